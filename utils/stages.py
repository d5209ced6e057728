"""The stages of every experiment as library functions: ``train``, ``prune``, ``finetune``, ``scratch`` (the
lottery's ``ticket`` is in utils/lottery.py). Each takes a method (utils/methods.py) and typed arguments
(dataclasses below, plus the method's own options) and returns its record (summary.json / prune.json). The
scripts in the method folders only parse their command line into these dataclasses (utils/cli.py) and call them.

trunk:     train (baseline, or with the method's training hooks) -> prune (the method's selection rule)
branches:  fine-tune (inherited weights, small constant LR), scratch-E (fresh init, same epochs),
           scratch-B (fresh init, epochs x FLOPs(base) / FLOPs(pruned), same LR fractions)
"""
import copy
import dataclasses
import os
import random
import sys
import time
import warnings
from contextlib import ExitStack
from dataclasses import asdict, dataclass, fields
from typing import Optional

import numpy as np
import torch

from models import build_from_spec, create_model, model_entry, option_kwargs
from utils import dist as dist_utils
from utils.checkpoint import (check_writable, load_checkpoint, model_from_checkpoint, relative_to,
                              remove_stale_temporaries, run_lock, save_checkpoint, save_json, spec_fields)
from utils.data import dataset_info, dataset_names, is_folder_dataset, run_info, load_dataset, make_loader, split_validation, subset
from utils.engine import TrainConfig, Trainer, evaluate
from utils.errors import UserError
from utils.flops import count_flops, count_macs, count_params, model_costs
from utils.hparams import hp
from utils.masks import MaskHook, apply_masks, check_masks, density, empty_layers, split_torch_prune_state
from utils.methods import ChannelMethod, MaskMethod, PruneContext, StageContext

PRUNED = "pruned.pth.tar"


# ------------------------------------------------------------------------------------------ arguments
@dataclass
class EvalDataArgs:
    dataset: str = hp("cifar10", "dataset", choices=dataset_names())
    data: Optional[str] = hp(None, "dataset folder (default ./data, then a torchvision download; "
                                   "Fashion-MNIST also /usr/share/datasets/fashion-mnist)")
    test_batch_size: int = hp(256, "evaluation batch size")
    test_subset: int = hp(0, "evaluate on the first N test images only (0 = all; a fixed random N of an "
                             "ImageFolder tree)")


@dataclass
class DataArgs(EvalDataArgs):
    batch_size: int = hp(64, "training batch size (global: split across torchrun ranks)")
    train_subset: int = hp(0, "train on the first N training images only (0 = all; for CPU-scale runs; a fixed "
                              "random N of an ImageFolder tree)")
    val_split: int = hp(0, "hold out N training images (the same ones for every run) and keep as model_best the "
                           "epoch best on them; 0 = the reference's rule, the best epoch on the test set")


@dataclass
class FolderOptions:
    """How an ImageFolder dataset (ImageNet) is read: the loader, its workers and the crop size."""
    loader: str = hp("reference", "reference: PIL decode and torchvision's transforms in DataLoader workers (the "
                                  "reference pipeline); fast: batched decode_jpeg (on the GPU with --device cuda) and "
                                  "crops as tensor ops on the device", choices=["reference", "fast"])
    workers: int = hp(8, "data loader worker processes per rank (0 = in the main process)")
    input_size: int = hp(224, "training crop and evaluation crop size (evaluation resizes to size x 256/224 first); "
                              "smaller for CPU-scale runs")


@dataclass
class ImageEvalDataArgs(FolderOptions, EvalDataArgs):
    dataset: str = hp("imagenet", "dataset", choices=dataset_names())


@dataclass
class ImageDataArgs(FolderOptions, DataArgs):
    dataset: str = hp("imagenet", "dataset", choices=dataset_names())
    augment: str = hp("reference", "training augmentation: reference (random-resized crop + flip) or sss (Sparse "
                                   "Structure Selection's: bicubic crop, colour jitter 0.4, PCA lighting 0.1, its "
                                   "mean/std)", choices=["reference", "sss"])


@dataclass
class TrainArgs:
    epochs: int = hp(160, "number of epochs")
    lr: float = hp(0.1, "initial learning rate")
    momentum: float = hp(0.9, "SGD momentum")
    nesterov: bool = hp(False, "Nesterov momentum (the SFP scripts use it)")
    weight_decay: float = hp(1e-4, "L2 weight decay", flags=("--wd",))
    schedule: list[float] = hp([0.5, 0.75], "multiply the LR by --gamma at these fractions of --epochs, or "
                                            "epochs with --schedule-unit epoch (empty = constant LR)")
    gamma: float = hp(0.1, "LR decay factor at each --schedule point")
    gammas: list[float] = hp([], "one LR factor per --schedule point instead, applied cumulatively "
                                 "(SFP's --gammas 10 0.2 0.2 0.2); empty = --gamma at every point")
    schedule_unit: str = hp("fraction", "unit of --schedule: fractions of --epochs, or epochs (SFP)",
                            choices=["fraction", "epoch"])
    lr_scale: str = hp("none", "linear: multiply --lr by (global --batch-size) / --lr-base-batch (Goyal et al.'s "
                                "linear scaling rule, for a batch other than the recipe's); none: --lr as given",
                       choices=["none", "linear"])
    lr_base_batch: int = hp(256, "the batch size --lr is meant for, with --lr-scale linear (ImageNet: 256)")
    warmup_epochs: float = hp(0.0, "gradual warm-up: the LR rises linearly from --warmup-from to the (scaled) LR over "
                                   "this many epochs, per iteration (Goyal et al.: 5 with --lr-scale linear); 0 = none")
    warmup_from: Optional[float] = hp(None, "the LR the warm-up starts at (default: --lr, Goyal et al.'s; a lower one "
                                            "warms up a net whose first epochs at --lr diverge, as He et al. do for "
                                            "ResNet-110)")
    seed: int = hp(1, "random seed (init, data order, augmentation)")
    save: str = hp("./logs", "output folder")
    resume: Optional[str] = hp(None, "continue from this checkpoint (model, optimizer, scheduler, RNG and data "
                                     "order); 'auto' = SAVE/checkpoint.pth.tar if it exists")
    device: str = hp("auto", "cpu, cuda, cuda:N or auto")
    amp: bool = hp(False, "bf16 autocast (CUDA)")
    channels_last: bool = hp(False, "channels_last memory format (CUDA)")
    compile: bool = hp(False, "torch.compile the model (CUDA)")
    progress: bool = hp(True, "tqdm progress bars")
    tensorboard: bool = hp(True, "tensorboard logs in SAVE/tensorboard")


@dataclass
class ModelArgs:
    arch: Optional[str] = hp(None, "architecture (a stage script's default: its method's)")
    depth: Optional[int] = hp(None, "depth (default: the architecture's)")


@dataclass
class PruneArgs:
    model: Optional[str] = hp(None, "trained checkpoint to prune (ours, or the reference repo's main.py output)")
    save: str = hp("./logs/pruned", "output folder for pruned.pth.tar and prune.json")
    arch: Optional[str] = hp(None, "architecture (read from our checkpoints; needed for the reference's)")
    depth: Optional[int] = hp(None, "depth (read from our checkpoints; needed for the reference's)")
    device: str = hp("auto", "device for the accuracy check and for data-driven rules: cpu, cuda or auto")


@dataclass
class CompactOption:
    compact: bool = hp(False, "channel-selection networks (PreResNet, DenseNet): also write SAVE/compact.pth.tar, the "
                              "same function with each BN after its selection and unread produced channels removed "
                              "(for deployment; fine-tune / scratch still read pruned.pth.tar, the reference layout)")


@dataclass
class MaskPruneArgs:
    allow_empty_layers: bool = hp(False, "write the pruned model even if a layer loses every weight (it then "
                                         "outputs a constant); by default that is an error")


@dataclass
class FinetuneArgs:
    refine: Optional[str] = hp(None, "pruned checkpoint (pruned.pth.tar) whose weights are fine-tuned")
    arch: Optional[str] = hp(None, "architecture; checked against the checkpoint (needed for the reference's)")
    depth: Optional[int] = hp(None, "depth; checked against the checkpoint (needed for the reference's)")


@dataclass
class ScratchArgs:
    scratch: Optional[str] = hp(None, "pruned checkpoint whose architecture is trained from scratch")
    budget: str = hp("E", "E: the baseline's epochs; B: epochs x FLOPs(base)/FLOPs(pruned)", choices=["E", "B"])
    budget_cap: float = hp(10.0, "scratch-B: warn (and say so in summary.json) when the budget exceeds this many "
                                 "times --epochs, e.g. for a model pruned to almost nothing; it is not shortened")
    arch: Optional[str] = hp(None, "architecture; checked against the checkpoint (needed for the reference's)")
    depth: Optional[int] = hp(None, "depth; checked against the checkpoint (needed for the reference's)")


FINETUNE_DEFAULTS = {"epochs": 40, "lr": 0.001, "schedule": [], "save": "./logs/finetune"}
SCRATCH_DEFAULTS = {"save": "./logs/scratch"}


def record_of(*objs):
    """The arguments of a run as one flat dict (its summary's ``args``)."""
    out = {}
    for o in objs:
        if o is not None:
            out.update(asdict(o))
    return out


# ------------------------------------------------------------------------------------------ training
def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def milestones(schedule, epochs):
    """LR drop epochs int(f * epochs); a drop at epoch 0 (only for tiny runs) would skip the base LR."""
    return [m for m in (int(f * epochs) for f in schedule) if m > 0]


def validate_train_args(args):
    if args.epochs < 1:
        raise UserError(f"--epochs {args.epochs}: must be at least 1")
    if args.lr <= 0:
        raise UserError(f"--lr {args.lr}: must be positive")
    if args.momentum < 0 or args.weight_decay < 0:
        raise UserError(f"--momentum {args.momentum} / --wd {args.weight_decay}: must not be negative")
    if args.schedule_unit == "epoch":
        if any(m < 1 or m != int(m) for m in args.schedule):
            raise UserError(f"--schedule {args.schedule}: epochs must be whole numbers of at least 1")
    elif any(not 0 < f < 1 for f in args.schedule):
        raise UserError(f"--schedule {args.schedule}: fractions must lie in (0, 1)")
    if args.gammas and len(args.gammas) != len(args.schedule):
        raise UserError(f"--gammas {args.gammas}: needs one factor per --schedule point ({len(args.schedule)})")
    if any(g <= 0 for g in args.gammas) or args.gamma <= 0:
        raise UserError(f"--gamma {args.gamma} / --gammas {args.gammas}: factors must be positive")
    if args.lr_base_batch < 1 or args.warmup_epochs < 0 or args.warmup_epochs >= args.epochs:
        raise UserError(f"--lr-base-batch {args.lr_base_batch} / --warmup-epochs {args.warmup_epochs}: the base batch "
                        f"must be at least 1, the warm-up at least 0 and shorter than --epochs {args.epochs}")
    if args.warmup_from is not None and (not args.warmup_epochs or not args.warmup_from > 0):
        raise UserError(f"--warmup-from {args.warmup_from}: needs --warmup-epochs above 0 and an LR above 0")


def effective_lr(train_args, batch_size):
    """--lr, times batch / --lr-base-batch with --lr-scale linear."""
    if train_args.lr_scale == "linear":
        return train_args.lr * batch_size / train_args.lr_base_batch
    return train_args.lr


def lr_steps(args):
    """(milestone epochs, per-milestone factors or None) of a TrainArgs; as ``milestones`` drops a fraction
    that falls on epoch 0, its factor goes with it."""
    if args.schedule_unit == "epoch":
        steps = [int(m) for m in args.schedule]
    else:
        steps = [int(f * args.epochs) for f in args.schedule]
    kept = [i for i, m in enumerate(steps) if m > 0]
    return [steps[i] for i in kept], ([args.gammas[i] for i in kept] if args.gammas else None)


def check_data_args(data_args):
    for flag, size in (("--batch-size", getattr(data_args, "batch_size", 2)),
                       ("--test-batch-size", data_args.test_batch_size)):
        if size < 1:
            raise UserError(f"{flag} {size}: must be at least 1")
    if getattr(data_args, "batch_size", 2) < 2:  # BatchNorm in training mode needs 2 values per channel
        raise UserError(f"--batch-size {data_args.batch_size}: training needs at least 2 images per batch "
                        f"(BatchNorm's batch statistics)")
    for flag, n in (("--train-subset", getattr(data_args, "train_subset", 0)), ("--test-subset", data_args.test_subset),
                    ("--val-split", getattr(data_args, "val_split", 0))):
        if n < 0:
            raise UserError(f"{flag} {n}: must be 0 or a positive number of images")


def data_info(data_args):
    """The DatasetInfo of a run before its data is loaded (an ImageFolder tree's own number of classes)."""
    return run_info(data_args.dataset, data_args.data, getattr(data_args, "input_size", None))


def load_data(data_args):
    """(info, train, test, val or None): the first --train-subset training images, of which --val-split are
    held out for model selection. For an ImageFolder tree the info carries its number of classes and the crop
    size (--input-size), which is what a network built for it takes."""
    check_data_args(data_args)
    info = dataset_info(data_args.dataset)
    train, test = load_dataset(data_args.dataset, data_args.data)
    if is_folder_dataset(train):
        info = dataclasses.replace(info, num_classes=len(train.classes),
                                   image_size=getattr(data_args, "input_size", info.image_size))
    train, val = subset(train, getattr(data_args, "train_subset", 0)), None
    if getattr(data_args, "val_split", 0):
        train, val = split_validation(train, data_args.val_split)
    return info, train, subset(test, data_args.test_subset), val


def make_loaders(info, train, test, val, data_args, train_args, dinfo):
    common = dict(info=info, device=dinfo.device, rank=dinfo.rank, world_size=dinfo.world_size,
                  channels_last=train_args.channels_last, folder=data_args)
    if data_args.batch_size % dinfo.world_size:
        raise UserError(f"--batch-size {data_args.batch_size} is not divisible by {dinfo.world_size} ranks")
    train_loader = make_loader(train, data_args.batch_size, train=True, seed=train_args.seed, **common)
    test_loader = make_loader(test, data_args.test_batch_size, train=False, **common)
    val_loader = make_loader(val, data_args.test_batch_size, train=False, **common) if val is not None else None
    return train_loader, test_loader, val_loader


RESUME_KEYS = ("epoch", "best_prec1", "optimizer", "scheduler", "rng")  # what Trainer.load_state needs
# arguments a resumed run may change: where things are and how they are shown, not what is computed
RESUME_FREE = frozenset({"resume", "save", "data", "device", "progress", "tensorboard", "test_batch_size"})


def check_resume_args(recorded, current, path):
    """A resumed run continues the recorded one: refuse (naming the first flag that differs) arguments that would
    make its record describe a run that never happened."""
    if not isinstance(recorded, dict):
        return  # a checkpoint from before arguments were recorded
    for key, value in current.items():
        if key in RESUME_FREE or key not in recorded or recorded[key] == value:
            continue
        flag = "--" + key.replace("_", "-")
        raise UserError(f"--resume {path}: the run was recorded with {flag} {_shown(recorded[key])}, this command "
                        f"gives {flag} {_shown(value)}; resume with the run's own arguments (its summary.json / "
                        f"checkpoint 'args') or start a new run in another --save")
    extra = sorted(k for k in recorded if k not in current and k not in RESUME_FREE)
    if extra:
        raise UserError(f"--resume {path}: the run was recorded with --{extra[0].replace('_', '-')} "
                        f"{_shown(recorded[extra[0]])}, which this command does not take")


def _shown(value):
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _silent(*args, **kwargs):
    pass


def _resume_path(train_args):
    if train_args.resume == "auto":
        path = os.path.join(train_args.save, Trainer.CHECKPOINT)
        return path if os.path.exists(path) else None
    return train_args.resume


def command_line():
    """This run's command line, its script named from the repository root when it lies there: run records carry no
    path of the machine that made them."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = list(sys.argv)
    if argv and os.path.isabs(argv[0]) and argv[0].startswith(root + os.sep):
        argv[0] = os.path.relpath(argv[0], root)
    return " ".join(argv)


def run_stage(make_model, data_args, train_args, *, method=None, stage=None, hooks=(), ckpt_extra=None,
              summary_extra=None, args_record=None, log=print):
    """Train ``make_model(info)`` (built after seeding) for one stage; write checkpoints and summary.json.

    ``stage`` (a StageContext) asks ``method`` for its hooks, objective and optimizer once the network exists.
    Everything that can be wrong with the input is checked before anything is written.
    """
    validate_train_args(train_args)
    dinfo = dist_utils.setup(train_args.device)
    if not dinfo.is_main:
        log = _silent  # one copy of every line under torchrun
    held = ExitStack()
    try:
        info, train, test, val = load_data(data_args)
        seed_everything(train_args.seed)
        model = make_model(info)
        hooks, name = list(hooks), stage.stage
        objective = optimizer = None
        if method is not None:
            stage.model = model  # before stage_name: a run may be named by its network (SSS's block lambdas)
            name = method.stage_name(stage)
            hooks += method.train_hooks(stage)
            objective, optimizer = method.objective(stage), method.optimizer(stage)
        resume = _resume_path(train_args)
        resume_ckpt = load_checkpoint(resume, "--resume") if resume else None
        if resume_ckpt is not None and resume_ckpt.get("model") != model.spec.to_dict():
            raise UserError(f"--resume {resume}: checkpoint holds a different network than this run builds")
        missing = [k for k in RESUME_KEYS if resume_ckpt is not None and k not in resume_ckpt]
        if missing:
            raise UserError(f"--resume {resume}: not a training checkpoint (no {', '.join(missing)}); "
                            f"resume from SAVE/{Trainer.CHECKPOINT}")
        if resume_ckpt is None and os.path.exists(os.path.join(train_args.save, Trainer.CHECKPOINT)):
            raise UserError(f"--save {train_args.save} already holds a run; pass --resume auto to continue it "
                            "or choose another --save")
        args_record = dict(args_record or record_of(data_args, train_args))
        if resume_ckpt is not None:
            check_resume_args(resume_ckpt.get("args"), args_record, resume)
        train_loader, test_loader, val_loader = make_loaders(info, train, test, val, data_args, train_args, dinfo)
        if method is not None:
            train_loader = method.train_loader(stage, train_loader)
        if dinfo.is_main:
            check_writable(train_args.save)
            held.enter_context(run_lock(train_args.save))  # released in the finally below, also on failure
            remove_stale_temporaries(train_args.save)
        dist_utils.barrier(dinfo)
        costs = model_costs(model)
        steps, gammas = lr_steps(train_args)
        lr = effective_lr(train_args, data_args.batch_size)
        warmup_from = train_args.lr if train_args.warmup_from is None else train_args.warmup_from
        config = TrainConfig(epochs=train_args.epochs, lr=lr, momentum=train_args.momentum,
                             weight_decay=train_args.weight_decay, nesterov=train_args.nesterov,
                             milestones=steps, gammas=gammas, warmup_epochs=train_args.warmup_epochs,
                             warmup_start_lr=warmup_from,
                             gamma=train_args.gamma, amp=train_args.amp, channels_last=train_args.channels_last,
                             compile=train_args.compile, progress=train_args.progress,
                             tensorboard=train_args.tensorboard)
        extra = {**spec_fields(model, info.name), "stage": name, "args": args_record, **(ckpt_extra or {})}
        engine = {k: v for k, v in (("objective", objective), ("optimizer", optimizer)) if v is not None}
        trainer = Trainer(model, train_loader, test_loader, config, train_args.save, dinfo, hooks, extra, log,
                          val_loader=val_loader, **engine)
        if resume_ckpt is not None:
            trainer.load_state(resume_ckpt)
            log(f"resumed from {resume} at epoch {trainer.start_epoch}")
        held_out = f" ({val.labels.numel()} held out for selection)" if val is not None else ""
        warm = (f", {train_args.warmup_epochs:g} warm-up epoch(s) from lr {warmup_from:g}"
                if train_args.warmup_epochs else "")
        log(f"{name}: {model.spec.arch}-{model.spec.depth} on {info.name} ({train.labels.numel()} train{held_out} / "
            f"{test.labels.numel()} test images), {costs['params']:,} params, {costs['flops']:,} FLOPs, "
            f"{train_args.epochs} epochs, lr {lr}{' (linearly scaled)' if lr != train_args.lr else ''}"
            f"{warm}, "
            f"milestones {config.milestones}, "
            f"device {dinfo.device}, {dinfo.world_size} process(es)")
        start = time.time()
        result = trainer.fit()
        summary = {"stage": name, **result, **costs, "arch": model.spec.arch, "depth": model.spec.depth,
                   "cfg": list(model.spec.cfg), "dataset": info.name, "seed": train_args.seed,
                   "world_size": dinfo.world_size, "wall_time_s": round(time.time() - start, 3), "lr_effective": lr,
                   "command": command_line(), "args": args_record,
                   **({"method": method.name} if method is not None else {}),
                   **({"source": relative_to(ckpt_extra["source"], train_args.save)}
                      if ckpt_extra and "source" in ckpt_extra else {}),
                   **(summary_extra or {})}
        if dinfo.is_main:
            save_json(summary, os.path.join(train_args.save, "summary.json"))
            log(f"{name} done: final {100 * summary['final_prec1']:.2f}%, "
                f"{'selected' if val is not None else 'best'} {100 * summary['best_prec1']:.2f}% -> {train_args.save}")
        return summary
    finally:
        held.close()
        dist_utils.cleanup(dinfo)


def build_network(arch, depth, options, info):
    """A fresh network of ``arch``/``depth`` with its options (an instance of the entry's options dataclass)."""
    entry = model_entry(arch)
    depth = entry.default_depth if depth is None else depth
    if depth not in entry.depths:
        raise UserError(f"--depth {depth} is not available for --arch {entry.name} "
                        f"(choose from {', '.join(map(str, entry.depths))})")
    return create_model(entry.name, depth, num_classes=info.num_classes, in_channels=info.in_channels,
                        image_size=info.image_size, **option_kwargs(entry.name, depth, options))


def check_method_arch(method, arch, depth, flag="--arch"):
    name = model_entry(arch).name
    if method.archs and name not in method.archs:
        raise UserError(f"{flag} {arch}: {method.name} is set up for {', '.join(sorted(method.archs))}")
    depth = model_entry(arch).default_depth if depth is None else depth
    if method.archs and depth not in method.archs[name]:
        raise UserError(f"--depth {depth}: {method.name} is set up for {name} depths "
                        f"{', '.join(map(str, method.archs[name]))}")


def train(method, model_args, data_args, train_args, hparams, *, options=None, log=print):
    """Train a fresh network (the baseline, or the method's own training: its hooks, objective, optimizer)."""
    if model_args.arch is None:
        raise UserError("--arch is required")
    entry = model_entry(model_args.arch)
    check_method_arch(method, entry.name, model_args.depth)
    info = data_info(data_args)
    depth = entry.default_depth if model_args.depth is None else model_args.depth
    stage = StageContext("train", hparams, data_args, train_args, info, arch=entry.name, depth=depth, log=log)
    method.validate(stage)

    def make_model(info):
        model = build_network(entry.name, model_args.depth, options, info)
        method.init_model(model, stage)
        return model

    record = record_of(model_args, options, data_args, train_args, hparams)
    return run_stage(make_model, data_args, train_args, method=method, stage=stage, args_record=record, log=log)


# ------------------------------------------------------------------------------------------- sources
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


def load_source(path, flag, info, arch=None, depth=None, options=None, method=None, load_weights=True):
    """(checkpoint, network) of a trained or pruned checkpoint: ours (its spec) or the reference's (``arch``,
    ``depth`` and the architecture's ``options``; the method's spelling of --arch is understood)."""
    if method is not None and arch is not None:
        arch, depth = resolve_alias(method, arch, depth)
    ckpt = import_torch_prune(load_checkpoint(path, flag), path, flag)
    kwargs = option_kwargs(model_entry(arch).name, depth, options) if arch is not None and options is not None else {}
    kwargs.pop("cfg", None)  # a width factor makes a new network; a checkpoint's widths are its own
    model = model_from_checkpoint(ckpt, path, flag, arch, depth, info, load_weights=load_weights, **kwargs)
    if "masks" in ckpt:
        check_masks(model, ckpt["masks"], path, flag)
    return ckpt, model


def resolve_alias(method, arch, depth):
    """The reference's spelling of --arch for this method (slimming's 'resnet' = our preresnet; SFP's
    'resnet56' = resnet_sfp, depth 56) as (model name, depth)."""
    alias = method.arch_aliases.get(arch)
    if alias is None:
        return arch, depth
    if isinstance(alias, tuple):
        name, alias_depth = alias
        if depth is not None and depth != alias_depth:
            raise UserError(f"--arch {arch} --depth {depth}: {arch} is depth {alias_depth}")
        return name, alias_depth
    return alias, depth


def source_width(ckpt):
    """{'width': w} for a source trained at --width w != 1 (tables label it), else {}."""
    width = (ckpt.get("args") or {}).get("width")
    return {} if width in (None, 1, 1.0) else {"width": width}


SHARED_ARGS = {f.name for cls in (ModelArgs, ImageDataArgs, TrainArgs) for f in fields(cls)}


def _architecture_options():
    from models.registry import list_models
    return {name for arch in list_models() if model_entry(arch).options is not None
            for name in model_entry(arch).options.__dataclass_fields__}


def source_options(ckpt):
    """The options the source checkpoint was trained with beyond the shared model/data/training flags and the
    architectures' own options (SFP's --rate, slimming's -sr --s): they are part of what a pruned model is
    (results.py labels rows by them)."""
    excluded = SHARED_ARGS | _architecture_options()
    return {k: v for k, v in (ckpt.get("args") or {}).items() if k not in excluded}


# ---------------------------------------------------------------------------------------------- prune
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


def evaluate_if_possible(models, data_args, device, log):
    """Test accuracy of each model when the dataset is at hand; None (with a note) when it is not."""
    try:
        info, _, test, _ = load_data(data_args)
    except UserError as exc:
        if data_args.data:
            raise
        log(f"note: test accuracy not measured ({exc})")
        return [None] * len(models)
    loader = make_loader(test, data_args.test_batch_size, train=False, info=info, device=device, folder=data_args)
    return [evaluate(m.to(device), loader, device)[1] for m in models]


def sparse_record(model, masks):
    """Costs of a masked network: nonzero parameters, FLOPs and MACs of the nonzero conv weights, density."""
    removed = sum(int((~m).sum()) for m in masks.values())
    return {"density": density(masks), "params_nonzero": count_params(model) - removed,
            "flops_nonzero": count_flops(model, rule="nonzero"), "macs_nonzero": count_macs(model, rule="nonzero")}


def prune(method, args, data_args, hparams, *, options=None, compact=False, empty_ok=False, log=print):
    """Load a trained model and prune it with the method's rule: a ChannelMethod's channels are removed (and
    the next layers reconstructed if the method does that), a MaskMethod's weights zeroed. Writes
    SAVE/pruned.pth.tar and SAVE/prune.json; returns the record."""
    info = data_info(data_args)
    check_prune_output(args.save)
    ckpt, model = load_source(args.model, "--model", info, args.arch, args.depth, options, method)
    method.check_arch(model.spec, args.model)
    if compact and not hasattr(model, "compact_model"):
        raise UserError(f"--compact: {model.spec.arch} has no channel selection; its pruned network is already "
                        f"compact")
    method.check_source(ckpt, model, args.model)
    dinfo = dist_utils.setup(args.device)
    ctx = PruneContext(hparams, device=dinfo.device, dist=dinfo, dataset=data_args.dataset, data=data_args.data,
                       folder=data_args, log=log, save=args.save)
    if isinstance(method, ChannelMethod):
        record, checkpoint, extra_files = _prune_channels(method, model, ckpt, ctx, args, data_args, info, compact, log)
    elif isinstance(method, MaskMethod):
        record, checkpoint = _prune_masks(method, model, ckpt, ctx, args, data_args, info, empty_ok, log)
        extra_files = {}
    else:
        raise TypeError(f"{type(method).__name__} is neither a channel nor a mask method")
    record.update({k: v for k, v in record_of(hparams).items() if k not in record},
                  method=method.name, method_key=method.key, source=relative_to(args.model, args.save),
                  source_options=source_options(ckpt), arch=model.spec.arch, depth=model.spec.depth,
                  dataset=ckpt.get("dataset", info.name), **source_width(ckpt))
    checkpoint["prune"] = record
    check_writable(args.save)
    with run_lock(args.save):
        check_prune_output(args.save)  # again under the lock: another process may have finished meanwhile
        for name, obj in extra_files.items():
            save_checkpoint(obj, os.path.join(args.save, name))
        write_pruned(args.save, checkpoint, record)
    return record


def _prune_channels(method, model, ckpt, ctx, args, data_args, info, compact, log):
    keep, pruned = method.prune_network(model, ctx)
    masked = method.masked_model(model, keep, ctx)
    described = method.describe(model, keep, ctx)
    small = None
    if compact:
        from utils.compact import compact as make_compact, compact_record
        small, diff = make_compact(pruned, "--model", args.model)
    base_costs, pruned_costs = model_costs(model), model_costs(pruned)
    accs = evaluate_if_possible([model, pruned] + ([masked] if masked is not None else []), data_args, ctx.device,
                                log)
    acc_before, acc_after = accs[:2]
    model, pruned = model.cpu(), pruned.cpu()
    record = {"cfg": list(pruned.spec.cfg), "cfg_base": list(model.spec.cfg),
              "params_base": base_costs["params"], "params_pruned": pruned_costs["params"],
              "flops_base": base_costs["flops"], "flops_pruned": pruned_costs["flops"],
              "macs_base": base_costs["macs"], "macs_pruned": pruned_costs["macs"],
              "flops_ratio": base_costs["flops"] / pruned_costs["flops"],
              "acc_before": acc_before, "acc_after": acc_after, **described}
    if masked is not None:
        record["acc_masked"] = accs[2]
    record.update(method.budget_preview(base_costs["flops"], pruned_costs["flops"]) or {})
    extra = dict(ctx.files)
    dataset = ckpt.get("dataset", info.name)
    if masked is not None and method.save_masked:
        # the reference's mask implementation: the full network with the pruned channels' BN zeroed, for a
        # fine-tune that keeps them at zero (finetune.py --refine SAVE/masked.pth.tar)
        extra["masked.pth.tar"] = {**spec_fields(masked.cpu(), dataset), "state_dict": masked.state_dict(),
                                   "base_model": model.spec.to_dict(), "mask_implementation": True,
                                   "pruned_cfg": list(pruned.spec.cfg)}
    if small is not None:
        record.update(compact_record(pruned, small, diff))
        extra["compact.pth.tar"] = {**spec_fields(small, dataset), "state_dict": small.state_dict(),
                                    "base_model": model.spec.to_dict(), "compact": True}
    checkpoint = {**spec_fields(pruned, dataset), "state_dict": pruned.state_dict(), "base_model": model.spec.to_dict(),
                  "kept": {str(k): list(map(int, v)) for k, v in keep.items()}}
    fmt = (lambda a: "n/a" if a is None else f"{100 * a:.2f}%")  # noqa: E731
    log(f"{method.name}: {model.spec.arch}-{model.spec.depth} cfg {pruned.spec.cfg}")
    masked_note = f" (masked model {fmt(record['acc_masked'])})" if masked is not None else ""
    log(f"params {base_costs['params']:,} -> {pruned_costs['params']:,}; FLOPs {base_costs['flops']:,} -> "
        f"{pruned_costs['flops']:,} (x{record['flops_ratio']:.5f}); MACs {base_costs['macs']:,} -> "
        f"{pruned_costs['macs']:,}; test accuracy {fmt(acc_before)} -> {fmt(acc_after)}{masked_note}; "
        f"saved to {args.save}")
    return record, checkpoint, extra


def _prune_masks(method, model, ckpt, ctx, args, data_args, info, empty_ok, log):
    current = ckpt.get("masks")
    if current is not None:
        current = {n: m.bool().cpu() for n, m in current.items()}
        apply_masks(model, current)
    masks = method.select(model, ctx, masks=current)
    empty = empty_layers(masks)
    if empty and not empty_ok:
        given = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in record_of(ctx.hparams).items()) or "this pruning"
        raise UserError(f"{given} leaves {len(empty)} layer(s) with no weight at all ({', '.join(empty[:3])}"
                        f"{', ...' if len(empty) > 3 else ''}): such a network computes a constant; lower the pruning "
                        f"ratio, or pass --allow-empty-layers to keep it anyway")
    pruned = copy.deepcopy(model)
    apply_masks(pruned, masks)
    described = method.describe(model, masks, ctx)
    before = sparse_record(model, current or {n: torch.ones_like(m) for n, m in masks.items()})
    after = sparse_record(pruned, masks)
    acc_before, acc_after = evaluate_if_possible([model, pruned], data_args, ctx.device, log)
    model, pruned = model.cpu(), pruned.cpu()
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    record = {"cfg": list(model.spec.cfg), "params_total": count_params(model),
              "params_base": before["params_nonzero"], "params_pruned": after["params_nonzero"],
              "flops_base": before["flops_nonzero"], "flops_pruned": after["flops_nonzero"],
              "macs_base": before["macs_nonzero"], "macs_pruned": after["macs_nonzero"],
              "flops_ratio": before["flops_nonzero"] / after["flops_nonzero"], "flops_rule": "nonzero",
              "masked_weights": total, "masked_weights_pruned": total - kept,
              "density_base": before["density"], "density": after["density"], "empty_layers": empty,
              "acc_before": acc_before, "acc_after": acc_after, **described}
    checkpoint = {**spec_fields(pruned, ckpt.get("dataset", info.name)), "state_dict": pruned.state_dict(),
                  "masks": masks, "base_model": model.spec.to_dict()}
    fmt = (lambda a: "n/a" if a is None else f"{100 * a:.2f}%")  # noqa: E731
    if empty:
        log(f"note: {len(empty)} layer(s) have no weights left: {', '.join(empty)}")
    log(f"{method.name}: {model.spec.arch}-{model.spec.depth}: {total - kept:,} of {total:,} masked weights pruned "
        f"(density {before['density']:.4f} -> {after['density']:.4f}); nonzero params "
        f"{record['params_base']:,} -> {record['params_pruned']:,}; FLOPs {record['flops_base']:,} -> "
        f"{record['flops_pruned']:,} (x{record['flops_ratio']:.5f}); MACs {record['macs_base']:,} -> "
        f"{record['macs_pruned']:,}; test accuracy {fmt(acc_before)} -> {fmt(acc_after)}; saved to {args.save}")
    return record, checkpoint


# ------------------------------------------------------------------------------- fine-tune and scratch
def _source_stage(method, name, hparams, data_args, train_args, path, flag, arch, depth, options, load_weights, log):
    info = data_info(data_args)
    published = method.published_source(hparams, info)
    if published is not None:  # a published architecture named by the method's option (scratch.py --model NAME)
        if path is not None:
            raise UserError(f"{flag} {path} and --model {published[0]['published']}: give one network to train")
        ckpt, model = published
        path = f"published:{ckpt['published']}"
    else:
        ckpt, model = load_source(path, flag, info, arch, depth, options, method, load_weights=load_weights)
    stage = StageContext(name, hparams, data_args, train_args, info, model=model, source=ckpt, source_path=path,
                         log=log)
    method.validate(stage)
    stage.masks = method.source_masks(stage)
    if stage.masks is not None:
        apply_masks(model, stage.masks)
    return stage


def _masked_extras(stage, ckpt_extra, summary_extra):
    hooks = []
    if stage.masks is not None:
        hooks.append(MaskHook(stage.masks))
        ckpt_extra["masks"] = stage.masks
        summary_extra.update(sparse_record(stage.model, stage.masks))
    return hooks


def finetune(method, args, data_args, train_args, hparams, *, options=None, log=print):
    """Train the pruned network from its inherited weights (with its mask kept, for a masked method)."""
    stage = _source_stage(method, "finetune", hparams, data_args, train_args, args.refine, "--refine", args.arch,
                          args.depth, options, True, log)
    state = {k: v.clone() for k, v in stage.model.state_dict().items()}
    spec = stage.model.spec

    def make_model(_info):
        fresh = build_from_spec(spec)
        fresh.load_state_dict(state)
        return fresh

    ckpt_extra, summary_extra = {"source": os.path.abspath(args.refine)}, {}
    hooks = _masked_extras(stage, ckpt_extra, summary_extra)
    return run_stage(make_model, data_args, train_args, method=method, stage=stage, hooks=hooks,
                     ckpt_extra=ckpt_extra, summary_extra=summary_extra,
                     args_record=record_of(args, data_args, train_args, hparams), log=log)


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


def scratch_budget(ckpt, model, info, base_epochs, rule="dense", path="(the checkpoint)"):
    """(epochs, record) for scratch-B: int(E x FLOPs(base) / FLOPs(pruned)), reference FLOPs convention;
    rule 'nonzero' counts only the checkpoint's nonzero conv weights (masked networks)."""
    base, origin = _base_of(ckpt, model, info, path)
    if rule == "nonzero":  # count the zeros of the checkpoint's weights, whatever the model holds now
        model = copy.deepcopy(model)
        model.load_state_dict(ckpt["state_dict"])
    f_base, f_pruned = count_flops(base, rule=rule), count_flops(model, rule=rule)
    epochs = int(base_epochs * f_base / f_pruned)
    return epochs, {"flops_base": f_base, "flops_pruned": f_pruned, "flops_ratio": f_base / f_pruned,
                    "flops_base_from": origin}


def check_budget_cap(epochs, base_epochs, cap, record):
    """Warn about an extreme scratch-B budget and record it; the run still trains it (it is the paper's rule)."""
    if not cap > 0:
        raise UserError(f"--budget-cap {cap}: must be positive")
    record["budget_cap"] = cap
    record["budget_over_cap"] = epochs > cap * base_epochs
    if record["budget_over_cap"]:
        warnings.warn(f"scratch-B budget of {epochs:,} epochs is {epochs / base_epochs:.1f} x --epochs {base_epochs}, "
                      f"above --budget-cap {cap:g} (FLOPs ratio {record.get('flops_ratio', float('nan')):.2f}); "
                      f"it is trained as computed; recorded as budget_over_cap in summary.json")


def scratch(method, args, data_args, train_args, hparams, *, options=None, log=print):
    """Train the pruned architecture from a fresh initialisation: scratch-E (the given epochs) or scratch-B
    (epochs x FLOPs ratio, the LR schedule at the same fractions). A masked method keeps the mask, re-drawing
    the surviving weights (the method's init)."""
    name = f"scratch-{args.budget}"
    stage = _source_stage(method, name, hparams, data_args, train_args, args.scratch, "--scratch", args.arch,
                          args.depth, options, method.masked or getattr(hparams, "masked", False), log)
    base_epochs = train_args.epochs
    summary_extra = {"budget": args.budget, "base_epochs": base_epochs}
    if args.budget == "B":
        train_args = copy.deepcopy(train_args)  # the budget may stretch the schedule too (SFP)
        stage.train = train_args
        budget = method.scratch_budget(stage, base_epochs)
        if budget is None:
            budget = scratch_budget(stage.source, stage.model, stage.info, base_epochs,
                                    rule="nonzero" if stage.masks is not None else "dense", path=args.scratch)
        epochs, record = budget
        check_budget_cap(epochs, base_epochs, args.budget_cap, record)
        summary_extra.update(record)
        train_args.epochs = epochs
    spec = stage.model.spec

    def make_model(_info):
        fresh = build_from_spec(spec)
        method.init_model(fresh, stage)
        return fresh

    ckpt_extra = {"source": stage.source_path if args.scratch is None else os.path.abspath(args.scratch)}
    hooks = _masked_extras(stage, ckpt_extra, summary_extra)
    return run_stage(make_model, data_args, train_args, method=method, stage=stage, hooks=hooks,
                     ckpt_extra=ckpt_extra, summary_extra=summary_extra,
                     args_record=record_of(args, data_args, train_args, hparams), log=log)

