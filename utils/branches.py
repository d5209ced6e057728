"""The four stages of every experiment, as entry points the method folders' thin scripts call.

trunk:     train (baseline, or with the method's training hooks) -> prune (the method's selection rule)
branches:  fine-tune (inherited weights, small constant LR), scratch-E (fresh init, same epochs),
           scratch-B (fresh init, epochs x FLOPs(base) / FLOPs(pruned), same LR fractions)
"""
import os
from dataclasses import dataclass
from typing import Optional

import torch

from models import build_from_spec, create_model, default_cfg, model_entry, scale_cfg
from utils import dist as dist_utils
from utils.checkpoint import (check_writable, load_checkpoint, model_from_checkpoint, save_checkpoint, save_json,
                              spec_fields)
from utils.data import DeviceLoader
from utils.engine import evaluate
from utils.errors import UserError
from utils.flops import count_flops, model_costs
from utils.hparams import build_parser, hp, parse, to_dict
from utils.stages import DataArgs, EvalDataArgs, ModelArgs, TrainArgs, load_data, run_stage
from utils.surgery import prune_channels


def model_options(model_args):
    options = {}
    if model_args.detach_shortcut:
        if model_entry(model_args.arch).name != "resnet":
            raise UserError("--detach-shortcut applies to --arch resnet only")
        options["detach_shortcut"] = True
    if model_args.bn1d_init != "uniform":
        if model_entry(model_args.arch).name != "vgg":
            raise UserError("--bn1d-init applies to --arch vgg only")
        options["bn1d_init"] = model_args.bn1d_init
    if model_args.width != 1.0 and model_entry(model_args.arch).name not in ("vgg", "vgg_slim"):
        # ResNet/PreResNet/DenseNet cfgs hold inner or selected widths only: scaling them is not a thinner net
        raise UserError("--width applies to --arch vgg and vgg_slim only")
    return options


def apply_arch_aliases(args, aliases):
    """A method's own spelling of --arch (e.g. the reference slimming scripts' 'resnet' for the PreResNet)
    becomes the model name, in place."""
    if aliases and getattr(args, "arch", None) in aliases:
        args.arch = aliases[args.arch]


# ------------------------------------------------------------------------------------------- train
def train_main(description, argv=None, defaults=None, hooks_factory=None, extra_args=(), arch_aliases=None):
    classes = (ModelArgs, DataArgs, TrainArgs) + tuple(extra_args)
    parsed = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    model_args, data_args, train_args = parsed[:3]
    apply_arch_aliases(model_args, arch_aliases)
    options = model_options(model_args)
    entry = model_entry(model_args.arch)
    if model_args.depth not in entry.depths:
        raise UserError(f"--depth {model_args.depth} is not available for --arch {entry.name} "
                        f"(choose from {', '.join(map(str, entry.depths))})")
    if model_args.width <= 0:
        raise UserError(f"--width {model_args.width}: must be positive")

    def make_model(info):
        cfg = scale_cfg(default_cfg(model_args.arch, model_args.depth), model_args.width)
        return create_model(model_args.arch, model_args.depth, num_classes=info.num_classes,
                            in_channels=info.in_channels, image_size=info.image_size, cfg=cfg, **options)

    hooks = hooks_factory(*parsed) if hooks_factory else ()
    return run_stage("baseline", make_model, data_args, train_args, hooks=hooks, hparams=(model_args,) + parsed[3:])


# ------------------------------------------------------------------------------------------- prune
@dataclass
class PruneArgs:
    model: Optional[str] = hp(None, "trained checkpoint to prune (ours, or the reference repo's main.py output)")
    save: str = hp("./logs/pruned", "output folder for pruned.pth.tar and prune.json")
    arch: Optional[str] = hp(None, "architecture (read from our checkpoints; needed for the reference's)")
    depth: Optional[int] = hp(None, "depth (read from our checkpoints; needed for the reference's)")
    detach_shortcut: bool = hp(False, "ResNet option of the checkpoint's network (reference bug B1)")
    device: str = hp("auto", "device for the accuracy check: cpu, cuda or auto")


def evaluate_if_possible(models, data_args, device, log):
    """Test accuracy of each model when the dataset is at hand; None (with a note) when it is not."""
    try:
        info, _, test = load_data(data_args)
    except UserError as exc:
        if data_args.data:
            raise
        log(f"note: test accuracy not measured ({exc})")
        return [None] * len(models)
    loader = DeviceLoader(test, data_args.test_batch_size, train=False, mean=info.mean, std=info.std,
                          device=device)
    return [evaluate(m.to(device), loader, device)[1] for m in models]


def prune_main(method, description, argv=None, extra_args=(), defaults=None, log=print):
    """Load a trained model, apply ``method.select`` and physically shrink it; write pruned.pth.tar and
    prune.json. ``extra_args`` dataclasses are passed to the selection rule as keyword arguments. The
    method's optional ``check_source``, ``masked`` and ``describe`` add a warning about the source, the
    masked model's accuracy (acc_masked) and extra record entries."""
    from utils.data import dataset_info
    classes = (PruneArgs, EvalDataArgs) + tuple(extra_args)
    parsed = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    args, data_args = parsed[:2]
    apply_arch_aliases(args, method.arch_aliases)
    rule_options = to_dict(*parsed[2:])
    info = dataset_info(data_args.dataset)
    ckpt = load_checkpoint(args.model, "--model")
    options = {"detach_shortcut": True} if args.detach_shortcut else {}
    model = model_from_checkpoint(ckpt, args.model, "--model", args.arch, args.depth, info, **options)
    spec = model.spec
    if spec.arch not in method.archs or spec.depth not in method.archs[spec.arch]:
        supported = "; ".join(f"{a}: {', '.join(map(str, d))}" for a, d in method.archs.items())
        raise UserError(f"--model {args.model}: {method.name} pruning is defined for {supported}, "
                        f"not {spec.arch}-{spec.depth}")
    if method.check_source is not None:
        method.check_source(ckpt, model, args.model)
    keep = method.select(model, **rule_options)
    pruned = prune_channels(model, keep)
    masked = method.masked(model, keep) if method.masked is not None else None
    described = method.describe(model, keep, **rule_options) if method.describe is not None else {}
    base_costs, pruned_costs = model_costs(model), model_costs(pruned)
    check_writable(args.save)
    device = dist_utils.setup(args.device).device
    accs = evaluate_if_possible([model, pruned] + ([masked] if masked is not None else []), data_args, device, log)
    acc_before, acc_after = accs[:2]
    model, pruned = model.cpu(), pruned.cpu()
    base_spec = model.spec.to_dict()
    record = {"method": method.name, **rule_options, "source": os.path.abspath(args.model),
              "cfg": list(pruned.spec.cfg), "cfg_base": list(spec.cfg),
              "params_base": base_costs["params"], "params_pruned": pruned_costs["params"],
              "flops_base": base_costs["flops"], "flops_pruned": pruned_costs["flops"],
              "macs_base": base_costs["macs"], "macs_pruned": pruned_costs["macs"],
              "flops_ratio": base_costs["flops"] / pruned_costs["flops"],
              "acc_before": acc_before, "acc_after": acc_after}
    if masked is not None:
        record["acc_masked"] = accs[2]
    record.update(described)
    save_checkpoint({**spec_fields(pruned, ckpt.get("dataset", info.name)), "state_dict": pruned.state_dict(),
                     "base_model": base_spec, "kept": {str(k): list(map(int, v)) for k, v in keep.items()},
                     "prune": record}, os.path.join(args.save, "pruned.pth.tar"))
    save_json(record, os.path.join(args.save, "prune.json"))
    fmt = (lambda a: "n/a" if a is None else f"{100 * a:.2f}%")
    log(f"{method.name}: {spec.arch}-{spec.depth} cfg {pruned.spec.cfg}")
    masked_note = f" (masked model {fmt(record['acc_masked'])})" if masked is not None else ""
    log(f"params {base_costs['params']:,} -> {pruned_costs['params']:,}; FLOPs {base_costs['flops']:,} -> "
        f"{pruned_costs['flops']:,} (x{record['flops_ratio']:.5f}); MACs {base_costs['macs']:,} -> "
        f"{pruned_costs['macs']:,}; test accuracy {fmt(acc_before)} -> {fmt(acc_after)}{masked_note}; "
        f"saved to {args.save}")
    return record


# -------------------------------------------------------------------------------------- branches
@dataclass
class CheckArgs:
    arch: Optional[str] = hp(None, "architecture; checked against the checkpoint (needed for the reference's)")
    depth: Optional[int] = hp(None, "depth; checked against the checkpoint (needed for the reference's)")


def _pruned_model(path, flag, check, info, load_weights):
    ckpt = load_checkpoint(path, flag)
    model = model_from_checkpoint(ckpt, path, flag, check.arch, check.depth, info, load_weights=load_weights)
    return ckpt, model


@dataclass
class FinetuneArgs:
    refine: Optional[str] = hp(None, "pruned checkpoint (pruned.pth.tar) whose weights are fine-tuned")


def finetune_main(description, argv=None, defaults=None, hooks_factory=None, arch_aliases=None):
    from utils.data import dataset_info
    defaults = {"epochs": 40, "lr": 0.001, "schedule": [], "save": "./logs/finetune", **(defaults or {})}
    classes = (FinetuneArgs, CheckArgs, DataArgs, TrainArgs)
    ft, check, data_args, train_args = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    apply_arch_aliases(check, arch_aliases)
    info = dataset_info(data_args.dataset)
    ckpt, model = _pruned_model(ft.refine, "--refine", check, info, load_weights=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def make_model(_info):
        fresh = build_from_spec(model.spec)
        fresh.load_state_dict(state)
        return fresh

    hooks = hooks_factory(ckpt, model) if hooks_factory else ()
    return run_stage("finetune", make_model, data_args, train_args, hooks=hooks, hparams=(ft, check),
                     ckpt_extra={"source": os.path.abspath(ft.refine)})


@dataclass
class ScratchArgs:
    scratch: Optional[str] = hp(None, "pruned checkpoint whose architecture is trained from scratch")
    budget: str = hp("E", "E: the baseline's epochs; B: epochs x FLOPs(base)/FLOPs(pruned)", choices=["E", "B"])


def scratch_budget(ckpt, model, info, base_epochs, check):
    """(epochs, record) for scratch-B: int(E x FLOPs(base) / FLOPs(pruned)), reference FLOPs convention."""
    if "base_model" in ckpt:
        base = build_from_spec(ckpt["base_model"])
    else:  # a reference pruned.pth.tar: the base is the default network of that arch and depth
        base = create_model(model.spec.arch, model.spec.depth, num_classes=info.num_classes,
                            in_channels=info.in_channels, image_size=info.image_size)
    f_base, f_pruned = count_flops(base), count_flops(model)
    epochs = int(base_epochs * f_base / f_pruned)
    return epochs, {"flops_base": f_base, "flops_pruned": f_pruned, "flops_ratio": f_base / f_pruned}


def scratch_main(description, argv=None, defaults=None, hooks_factory=None, init_fn=None, arch_aliases=None):
    from utils.data import dataset_info
    defaults = {"save": "./logs/scratch", **(defaults or {})}
    classes = (ScratchArgs, CheckArgs, DataArgs, TrainArgs)
    sc, check, data_args, train_args = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    apply_arch_aliases(check, arch_aliases)
    info = dataset_info(data_args.dataset)
    ckpt, model = _pruned_model(sc.scratch, "--scratch", check, info, load_weights=False)
    base_epochs = train_args.epochs
    extra = {"budget": sc.budget, "base_epochs": base_epochs}
    if sc.budget == "B":
        epochs, record = scratch_budget(ckpt, model, info, base_epochs, check)
        extra.update(record)
        train_args.epochs = epochs
    spec = model.spec

    def make_model(_info):
        fresh = build_from_spec(spec)
        if init_fn is not None:
            init_fn(fresh, ckpt)
        return fresh

    hooks = hooks_factory(ckpt, model) if hooks_factory else ()
    return run_stage(f"scratch-{sc.budget}", make_model, data_args, train_args, hooks=hooks, hparams=(sc, check),
                     ckpt_extra={"source": os.path.abspath(sc.scratch)}, summary_extra=extra)
