"""The four stages of every experiment, as entry points the method folders' thin scripts call.

trunk:     train (baseline, or with the method's training hooks) -> prune (the method's selection rule)
branches:  fine-tune (inherited weights, small constant LR), scratch-E (fresh init, same epochs),
           scratch-B (fresh init, epochs x FLOPs(base) / FLOPs(pruned), same LR fractions)
"""
import copy
import os
import warnings
from dataclasses import dataclass, fields
from typing import Optional

import torch

from models import build_from_spec, create_model, default_cfg, model_entry, scale_cfg
from models.bearpaw import VGG_NAMES
from utils import dist as dist_utils
from utils.checkpoint import (check_writable, load_checkpoint, model_from_checkpoint, run_lock, save_checkpoint,
                              save_json, spec_fields)
from utils.data import DeviceLoader
from utils.engine import evaluate
from utils.errors import UserError
from utils.flops import count_flops, count_macs, count_params, model_costs
from utils.hparams import build_parser, hp, parse, to_dict
from utils.stages import DataArgs, EvalDataArgs, ModelArgs, TrainArgs, load_data, run_stage
from utils.masks import (MaskHook, apply_masks, check_masks, checkpoint_masks, density, empty_layers,
                         join_torch_prune_state, sparse_reinit, split_torch_prune_state)
from utils.surgery import prune_channels

DENSENETS = ("densenet", "densenet_wl", "densenet_bc")


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
    if model_args.width != 1.0 and model_entry(model_args.arch).name not in ("vgg", "vgg_slim") + VGG_NAMES:
        # ResNet/PreResNet/DenseNet cfgs hold inner or selected widths only: scaling them is not a thinner net
        raise UserError("--width applies to the VGG architectures only")
    if getattr(model_args, "compression_rate", None) is not None:
        options.update(densenet_options(model_args.arch, model_args.compression_rate))
    return options


def densenet_options(arch, compression_rate):
    if model_entry(arch).name not in DENSENETS:
        raise UserError(f"--compression-rate applies to --arch {', '.join(DENSENETS)} only")
    if compression_rate <= 0:
        raise UserError(f"--compression-rate {compression_rate}: must be positive")
    return {"compression_rate": compression_rate}


def apply_arch_aliases(args, aliases):
    """A method's own spelling of --arch (e.g. the reference slimming scripts' 'resnet' for the PreResNet)
    becomes the model name, in place."""
    if aliases and getattr(args, "arch", None) in aliases:
        args.arch = aliases[args.arch]


# ------------------------------------------------------------------------------------------- train
def train_main(description, argv=None, defaults=None, hooks_factory=None, extra_args=(), arch_aliases=None,
               init_fn=None, stage="baseline"):
    """``init_fn(model, info, *parsed)`` edits the new model (e.g. loads pretrained weights); ``stage`` names
    the run, or is ``stage(*parsed) -> name``."""
    classes = (ModelArgs, DataArgs, TrainArgs) + tuple(extra_args)
    parsed = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    model_args, data_args, train_args = parsed[:3]
    apply_arch_aliases(model_args, arch_aliases)
    entry = model_entry(model_args.arch)
    if model_args.depth not in entry.depths:
        raise UserError(f"--depth {model_args.depth} is not available for --arch {entry.name} "
                        f"(choose from {', '.join(map(str, entry.depths))})")
    options = model_options(model_args)
    if model_args.width <= 0:
        raise UserError(f"--width {model_args.width}: must be positive")

    def make_model(info):
        cfg = scale_cfg(default_cfg(model_args.arch, model_args.depth), model_args.width)
        model = create_model(model_args.arch, model_args.depth, num_classes=info.num_classes,
                             in_channels=info.in_channels, image_size=info.image_size, cfg=cfg, **options)
        if init_fn is not None:
            init_fn(model, info, *parsed)
        return model

    hooks = hooks_factory(*parsed) if hooks_factory else ()
    stage = stage if isinstance(stage, str) else stage(*parsed)
    return run_stage(stage, make_model, data_args, train_args, hooks=hooks, hparams=(model_args,) + parsed[3:])


# ------------------------------------------------------------------------------------------- prune
@dataclass
class PruneArgs:
    model: Optional[str] = hp(None, "trained checkpoint to prune (ours, or the reference repo's main.py output)")
    save: str = hp("./logs/pruned", "output folder for pruned.pth.tar and prune.json")
    arch: Optional[str] = hp(None, "architecture (read from our checkpoints; needed for the reference's)")
    depth: Optional[int] = hp(None, "depth (read from our checkpoints; needed for the reference's)")
    detach_shortcut: bool = hp(False, "ResNet option of the checkpoint's network (reference bug B1)")
    device: str = hp("auto", "device for the accuracy check: cpu, cuda or auto")


@dataclass
class CompactOption:
    compact: bool = hp(False, "channel-selection networks (PreResNet, DenseNet): also write SAVE/compact.pth.tar, the "
                              "same function with each BN after its selection and unread produced channels removed "
                              "(for deployment; fine-tune / scratch still read pruned.pth.tar, the reference layout)")


PRUNED = "pruned.pth.tar"


def check_prune_output(save):
    """A prune step writes SAVE/prune.json, then SAVE/pruned.pth.tar (its completion mark): refuse a folder that
    already holds a finished pruned model rather than replace what later stages may have been trained from."""
    if os.path.exists(os.path.join(save, PRUNED)):
        raise UserError(f"--save {save} already holds a pruned model ({PRUNED}); choose another --save, or delete "
                        f"the folder to prune again")


def write_pruned(save, checkpoint, record):
    """prune.json first, pruned.pth.tar last: a prune killed in between leaves no finished-looking result."""
    save_json(record, os.path.join(save, "prune.json"))
    save_checkpoint(checkpoint, os.path.join(save, PRUNED))


def source_width(ckpt):
    """{'width': w} for a source trained at --width w != 1 (tables label it), else {}."""
    width = (ckpt.get("args") or {}).get("width")
    return {} if width in (None, 1, 1.0) else {"width": width}


def source_options(ckpt):
    """The options the source checkpoint was trained with beyond the shared model/data/training flags (SFP's
    --rate, slimming's -sr --s): they are part of what a pruned model is (results.py labels rows by them)."""
    shared = {f.name for cls in (ModelArgs, DataArgs, TrainArgs) for f in fields(cls)}
    return {k: v for k, v in (ckpt.get("args") or {}).items() if k not in shared}


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
    classes = (PruneArgs, CompactOption, EvalDataArgs) + tuple(extra_args)
    parsed = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    args, compact_opt, data_args = parsed[:3]
    apply_arch_aliases(args, method.arch_aliases)
    rule_options = to_dict(*parsed[3:])
    info = dataset_info(data_args.dataset)
    check_prune_output(args.save)
    ckpt = load_checkpoint(args.model, "--model")
    options = {"detach_shortcut": True} if args.detach_shortcut else {}
    model = model_from_checkpoint(ckpt, args.model, "--model", args.arch, args.depth, info, **options)
    spec = model.spec
    if spec.arch not in method.archs or spec.depth not in method.archs[spec.arch]:
        supported = "; ".join(f"{a}: {', '.join(map(str, d))}" for a, d in method.archs.items())
        raise UserError(f"--model {args.model}: {method.name} pruning is defined for {supported}, "
                        f"not {spec.arch}-{spec.depth}")
    if compact_opt.compact and not hasattr(model, "compact_model"):
        raise UserError(f"--compact: {spec.arch} has no channel selection; its pruned network is already compact")
    if method.check_source is not None:
        method.check_source(ckpt, model, args.model)
    keep = method.select(model, **rule_options)
    pruned = method.shrink(model, keep, **rule_options) if method.shrink is not None else prune_channels(model, keep)
    small = None
    if compact_opt.compact:
        from utils.compact import compact, compact_record
        small, diff = compact(pruned, "--model", args.model)
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
              "source_options": source_options(ckpt), "arch": spec.arch, "depth": spec.depth,
              "dataset": ckpt.get("dataset", info.name), "cfg": list(pruned.spec.cfg), "cfg_base": list(spec.cfg),
              "params_base": base_costs["params"], "params_pruned": pruned_costs["params"],
              "flops_base": base_costs["flops"], "flops_pruned": pruned_costs["flops"],
              "macs_base": base_costs["macs"], "macs_pruned": pruned_costs["macs"],
              "flops_ratio": base_costs["flops"] / pruned_costs["flops"],
              "acc_before": acc_before, "acc_after": acc_after}
    if masked is not None:
        record["acc_masked"] = accs[2]
    record.update(described)
    record.update(folder=os.path.abspath(args.save), **source_width(ckpt))
    if small is not None:
        record.update(compact_record(pruned, small, diff))
    with run_lock(args.save):
        check_prune_output(args.save)  # again under the lock: another process may have finished meanwhile
        if small is not None:
            save_checkpoint({**spec_fields(small, ckpt.get("dataset", info.name)), "state_dict": small.state_dict(),
                             "base_model": base_spec, "compact": True}, os.path.join(args.save, "compact.pth.tar"))
        write_pruned(args.save, {**spec_fields(pruned, ckpt.get("dataset", info.name)),
                                 "state_dict": pruned.state_dict(), "base_model": base_spec,
                                 "kept": {str(k): list(map(int, v)) for k, v in keep.items()}, "prune": record},
                     record)
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
    ckpt = import_torch_prune(load_checkpoint(path, flag), path, flag)
    model = model_from_checkpoint(ckpt, path, flag, check.arch, check.depth, info, load_weights=load_weights)
    if "masks" in ckpt:
        check_masks(model, ckpt["masks"], path, flag)
    return ckpt, model


def import_torch_prune(ckpt, path, flag):
    """A checkpoint whose state_dict comes from a torch.nn.utils.prune-pruned model (``X.weight_orig`` and
    ``X.weight_mask``) as ours: the plain state_dict, and the masks under ``masks`` (with any it had)."""
    masks = ckpt.get("masks")
    if masks is not None and not (isinstance(masks, dict) and all(torch.is_tensor(m) for m in masks.values())):
        raise UserError(f"{flag} {path}: 'masks' is not a {{parameter name: tensor}} dict")
    plain, imported = split_torch_prune_state(ckpt["state_dict"])
    if imported:
        ckpt = {**ckpt, "state_dict": plain, "masks": {**(masks or {}), **imported}}
    return ckpt


def sparse_record(model, masks):
    """Costs of a masked network: nonzero parameters, FLOPs and MACs of the nonzero conv weights, density."""
    removed = sum(int((~m).sum()) for m in masks.values())
    return {"density": density(masks), "params_nonzero": count_params(model) - removed,
            "flops_nonzero": count_flops(model, rule="nonzero"), "macs_nonzero": count_macs(model, rule="nonzero")}


@dataclass
class FinetuneArgs:
    refine: Optional[str] = hp(None, "pruned checkpoint (pruned.pth.tar) whose weights are fine-tuned")


def finetune_main(description, argv=None, defaults=None, hooks_factory=None, arch_aliases=None, extra_args=(),
                  masked=False):
    """``extra_args`` dataclasses are parsed too and passed on: ``hooks_factory(ckpt, model, *extras)``.
    ``masked``: the checkpoint's masks (for a checkpoint without them, the nonzero pattern of its conv weights)
    stay enforced (MaskHook) and are saved with every checkpoint."""
    from utils.data import dataset_info
    defaults = {"epochs": 40, "lr": 0.001, "schedule": [], "save": "./logs/finetune", **(defaults or {})}
    classes = (FinetuneArgs, CheckArgs, DataArgs, TrainArgs) + tuple(extra_args)
    parsed = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    (ft, check, data_args, train_args), extras = parsed[:4], parsed[4:]
    apply_arch_aliases(check, arch_aliases)
    info = dataset_info(data_args.dataset)
    ckpt, model = _pruned_model(ft.refine, "--refine", check, info, load_weights=True)
    masks = checkpoint_masks(ckpt, model, ft.refine, "--refine") if masked else None
    if masks is not None:
        apply_masks(model, masks)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def make_model(_info):
        fresh = build_from_spec(model.spec)
        fresh.load_state_dict(state)
        return fresh

    hooks = list(hooks_factory(ckpt, model, *extras)) if hooks_factory else []
    ckpt_extra, summary_extra = {"source": os.path.abspath(ft.refine)}, None
    if masks is not None:
        hooks.append(MaskHook(masks))
        ckpt_extra["masks"] = masks
        summary_extra = sparse_record(model, masks)
    return run_stage("finetune", make_model, data_args, train_args, hooks=hooks, hparams=(ft, check) + extras,
                     ckpt_extra=ckpt_extra, summary_extra=summary_extra)


@dataclass
class ScratchArgs:
    scratch: Optional[str] = hp(None, "pruned checkpoint whose architecture is trained from scratch")
    budget: str = hp("E", "E: the baseline's epochs; B: epochs x FLOPs(base)/FLOPs(pruned)", choices=["E", "B"])
    budget_cap: float = hp(10.0, "scratch-B: warn (and say so in summary.json) when the budget exceeds this many "
                                 "times --epochs, e.g. for a model pruned to almost nothing; it is not shortened")


def _base_of(ckpt, model, info, path):
    """(base network, where it came from) for a scratch-B budget: the unpruned network recorded by prune.py
    (``base_model``); for our checkpoints without that record (a baseline, a fine-tune run) the network the
    checkpoint itself holds, i.e. ratio 1; for a reference pruned.pth.tar (no spec at all) the default network
    of that arch and depth, as the reference's main_B.py builds it."""
    if "base_model" in ckpt:
        return build_from_spec(ckpt["base_model"]), "base_model"
    if "model" in ckpt:
        warnings.warn(f"--scratch {path}: holds no record of an unpruned base network (not prune.py's output), so "
                      f"scratch-B's FLOPs ratio is 1 (its own network); pass prune.py's pruned.pth.tar instead")
        return build_from_spec(ckpt["model"]), "own spec"
    return create_model(model.spec.arch, model.spec.depth, num_classes=info.num_classes, in_channels=info.in_channels,
                        image_size=info.image_size), "default cfg"


def scratch_budget(ckpt, model, info, base_epochs, check, rule="dense", path="(the checkpoint)"):
    """(epochs, record) for scratch-B: int(E x FLOPs(base) / FLOPs(pruned)), reference FLOPs convention;
    rule 'nonzero' counts only the checkpoint's nonzero conv weights (masked networks)."""
    base, origin = _base_of(ckpt, model, info, path)
    if rule == "nonzero":  # the pruned model was built without weights; its zeros are what counts
        model = copy.deepcopy(model)
        model.load_state_dict(ckpt["state_dict"])
    f_base, f_pruned = count_flops(base, rule=rule), count_flops(model, rule=rule)
    epochs = int(base_epochs * f_base / f_pruned)
    return epochs, {"flops_base": f_base, "flops_pruned": f_pruned, "flops_ratio": f_base / f_pruned,
                    "flops_base_from": origin}


def check_budget_cap(epochs, base_epochs, cap, record):
    """Warn about an extreme scratch-B budget and record it; the run still trains it (it is the paper's rule)."""
    if cap <= 0:
        raise UserError(f"--budget-cap {cap}: must be positive")
    record["budget_cap"] = cap
    record["budget_over_cap"] = epochs > cap * base_epochs
    if record["budget_over_cap"]:
        warnings.warn(f"scratch-B budget of {epochs:,} epochs is {epochs / base_epochs:.1f} x --epochs {base_epochs}, "
                      f"above --budget-cap {cap:g} (FLOPs ratio {record.get('flops_ratio', float('nan')):.2f}); "
                      f"it is trained as computed; recorded as budget_over_cap in summary.json")


def scratch_main(description, argv=None, defaults=None, hooks_factory=None, init_fn=None, arch_aliases=None,
                 extra_args=(), budget_fn=None, masked=False):
    """``extra_args`` dataclasses are parsed too and passed on as ``*extras`` to ``init_fn(fresh, ckpt, *extras)``,
    ``hooks_factory(ckpt, model, *extras)`` and ``budget_fn(ckpt, model, info, train_args, check, *extras) ->
    (epochs, record)``, which replaces scratch_budget for --budget B (and may set train_args.schedule).
    ``masked``: train the full-size network with the checkpoint's masks (or the nonzero pattern of its conv
    weights) enforced (MaskHook, saved with every checkpoint); unless ``init_fn`` is given, the masked weights
    are re-drawn by ``sparse_reinit`` (reference.md 5.3); the default scratch-B budget counts nonzero FLOPs."""
    from utils.data import dataset_info
    defaults = {"save": "./logs/scratch", **(defaults or {})}
    classes = (ScratchArgs, CheckArgs, DataArgs, TrainArgs) + tuple(extra_args)
    parsed = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    (sc, check, data_args, train_args), extras = parsed[:4], parsed[4:]
    apply_arch_aliases(check, arch_aliases)
    info = dataset_info(data_args.dataset)
    ckpt, model = _pruned_model(sc.scratch, "--scratch", check, info, load_weights=masked)
    masks = checkpoint_masks(ckpt, model, sc.scratch, "--scratch") if masked else None
    if masks is not None:
        apply_masks(model, masks)
    base_epochs = train_args.epochs
    extra = {"budget": sc.budget, "base_epochs": base_epochs}
    if sc.budget == "B":
        if budget_fn is not None:
            epochs, record = budget_fn(ckpt, model, info, train_args, check, *extras)
        else:
            epochs, record = scratch_budget(ckpt, model, info, base_epochs, check,
                                            rule="nonzero" if masked else "dense", path=sc.scratch)
        check_budget_cap(epochs, base_epochs, sc.budget_cap, record)
        extra.update(record)
        train_args.epochs = epochs
    spec = model.spec

    def make_model(_info):
        fresh = build_from_spec(spec)
        if init_fn is not None:
            init_fn(fresh, ckpt, *extras)
        elif masks is not None:
            sparse_reinit(fresh, masks)
        return fresh

    hooks = list(hooks_factory(ckpt, model, *extras)) if hooks_factory else []
    ckpt_extra = {"source": os.path.abspath(sc.scratch)}
    if masks is not None:
        hooks.append(MaskHook(masks))
        ckpt_extra["masks"] = masks
        extra.update(sparse_record(model, masks))
    return run_stage(f"scratch-{sc.budget}", make_model, data_args, train_args, hooks=hooks,
                     hparams=(sc, check) + extras, ckpt_extra=ckpt_extra, summary_extra=extra)


# ------------------------------------------------------------------------------------- mask pruning
@dataclass
class MaskPruneArgs(PruneArgs):
    compression_rate: Optional[float] = hp(None, "DenseNet option of a checkpoint without a spec (the reference's "
                                                 "--compressionRate, 2 for its densenet-100)",
                                           flags=("--compressionRate",))
    allow_empty_layers: bool = hp(False, "write the pruned model even if a layer loses every weight (it then "
                                         "outputs a constant); by default that is an error")


def check_method_arch(method, spec, path, flag="--model"):
    if spec.arch not in method.archs or spec.depth not in method.archs[spec.arch]:
        supported = "; ".join(f"{a}: {', '.join(map(str, d))}" for a, d in method.archs.items())
        raise UserError(f"{flag} {path}: {method.name} pruning is defined for {supported}, "
                        f"not {spec.arch}-{spec.depth}")


def mask_prune_main(method, description, argv=None, extra_args=(), defaults=None, log=print):
    """Unstructured (mask) pruning: load a trained model (ours, the reference's, or a torch.nn.utils.prune
    state_dict), let ``method.select(model, masks=current, **options)`` return the masks ({parameter name:
    bool tensor}, True = kept; ``current`` = the masks the checkpoint already carries, or None), and zero the
    pruned weights in the full-size network. Writes SAVE/pruned.pth.tar ({spec, state_dict, masks, base_model,
    prune}) and SAVE/prune.json (nonzero params, FLOPs and MACs before/after, density, accuracy)."""
    from utils.data import dataset_info
    classes = (MaskPruneArgs, EvalDataArgs) + tuple(extra_args)
    parsed = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    args, data_args = parsed[:2]
    apply_arch_aliases(args, method.arch_aliases)
    rule_options = to_dict(*parsed[2:])
    info = dataset_info(data_args.dataset)
    check_prune_output(args.save)
    ckpt = import_torch_prune(load_checkpoint(args.model, "--model"), args.model, "--model")
    options = {"detach_shortcut": True} if args.detach_shortcut else {}
    if args.compression_rate is not None:
        options.update(densenet_options(args.arch or ckpt.get("arch") or "?", args.compression_rate))
    model = model_from_checkpoint(ckpt, args.model, "--model", args.arch, args.depth, info, **options)
    check_method_arch(method, model.spec, args.model)
    current = ckpt.get("masks")
    if current is not None:
        check_masks(model, current, args.model, "--model")
        current = {n: m.bool().cpu() for n, m in current.items()}
        apply_masks(model, current)
    masks = method.select(model, masks=current, **rule_options)
    pruned = copy.deepcopy(model)
    apply_masks(pruned, masks)
    empty = empty_layers(masks)
    if empty and not args.allow_empty_layers:
        given = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in rule_options.items()) or "this pruning"
        raise UserError(f"{given} leaves {len(empty)} layer(s) with no weight at all ({', '.join(empty[:3])}"
                        f"{', ...' if len(empty) > 3 else ''}): such a network computes a constant; lower the pruning "
                        f"ratio, or pass --allow-empty-layers to keep it anyway")
    described = method.describe(model, masks, **rule_options) if method.describe is not None else {}
    before = sparse_record(model, current or {n: torch.ones_like(m) for n, m in masks.items()})
    after = sparse_record(pruned, masks)
    check_writable(args.save)
    device = dist_utils.setup(args.device).device
    acc_before, acc_after = evaluate_if_possible([model, pruned], data_args, device, log)
    model, pruned = model.cpu(), pruned.cpu()
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    record = {"method": method.name, **rule_options, "source": os.path.abspath(args.model),
              "source_options": source_options(ckpt),
              "arch": model.spec.arch, "depth": model.spec.depth, "dataset": ckpt.get("dataset", info.name),
              "cfg": list(model.spec.cfg),
              "params_total": count_params(model),
              "params_base": before["params_nonzero"], "params_pruned": after["params_nonzero"],
              "flops_base": before["flops_nonzero"], "flops_pruned": after["flops_nonzero"],
              "macs_base": before["macs_nonzero"], "macs_pruned": after["macs_nonzero"],
              "flops_ratio": before["flops_nonzero"] / after["flops_nonzero"], "flops_rule": "nonzero",
              "masked_weights": total, "masked_weights_pruned": total - kept,
              "density_base": before["density"], "density": after["density"], "empty_layers": empty,
              "acc_before": acc_before, "acc_after": acc_after, **described,
              "folder": os.path.abspath(args.save), **source_width(ckpt)}
    with run_lock(args.save):
        check_prune_output(args.save)
        write_pruned(args.save, {**spec_fields(pruned, ckpt.get("dataset", info.name)),
                                 "state_dict": pruned.state_dict(), "masks": masks, "base_model": model.spec.to_dict(),
                                 "prune": record}, record)
    fmt = (lambda a: "n/a" if a is None else f"{100 * a:.2f}%")
    if empty:
        log(f"note: {len(empty)} layer(s) have no weights left: {', '.join(empty)}")
    log(f"{method.name}: {model.spec.arch}-{model.spec.depth}: {total - kept:,} of {total:,} masked weights pruned "
        f"(density {before['density']:.4f} -> {after['density']:.4f}); nonzero params "
        f"{record['params_base']:,} -> {record['params_pruned']:,}; FLOPs {record['flops_base']:,} -> "
        f"{record['flops_pruned']:,} (x{record['flops_ratio']:.5f}); MACs {record['macs_base']:,} -> "
        f"{record['macs_pruned']:,}; test accuracy {fmt(acc_before)} -> {fmt(acc_after)}; saved to {args.save}")
    return record


@dataclass
class ExportArgs:
    model: Optional[str] = hp(None, "masked checkpoint to convert (pruned.pth.tar, or a fine-tune / scratch "
                                    "checkpoint of a masked run)")
    out: Optional[str] = hp(None, "output file: the architecture spec and, under 'state_dict', the state_dict of "
                                  "the network reparametrised by torch.nn.utils.prune (X.weight_orig, X.weight_mask)")
    dataset: str = hp("cifar10", "dataset (the number of classes of a checkpoint without a spec)",
                      choices=["cifar10", "cifar100", "fashionmnist"])


def export_torch_prune_main(description, argv=None, log=print):
    """Write a masked checkpoint in torch.nn.utils.prune's form: load it into a network reparametrised with
    ``prune.custom_from_mask`` (so the keys are exactly the ones torch produces) and save that state_dict."""
    from utils.data import dataset_info
    from utils.masks import to_torch_prune
    classes = (ExportArgs, CheckArgs)
    args, check = parse(build_parser(description, *classes), classes, argv)
    if not args.out:
        raise UserError("--out is required")
    if args.model and os.path.abspath(args.out) == os.path.abspath(args.model):
        raise UserError(f"--out {args.out}: would overwrite --model")
    info = dataset_info(args.dataset)
    ckpt, model = _pruned_model(args.model, "--model", check, info, load_weights=True)
    masks = checkpoint_masks(ckpt, model, args.model, "--model")
    apply_masks(model, masks)
    state = join_torch_prune_state(model.state_dict(), masks)
    reparametrised = to_torch_prune(build_from_spec(model.spec), masks)
    reparametrised.load_state_dict(state)  # strict: the keys are torch's own
    check_writable(os.path.dirname(os.path.abspath(args.out)), "--out")
    save_checkpoint({**spec_fields(model, ckpt.get("dataset", info.name)), "state_dict": state},
                    os.path.abspath(args.out))
    log(f"{model.spec.arch}-{model.spec.depth}: {len(masks)} masked weights (density {density(masks):.4f}) in "
        f"torch.nn.utils.prune form -> {args.out}")
    return state
