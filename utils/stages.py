"""What every method's train / finetune / scratch script shares: typed arguments and one stage runner.

A stage (baseline training, fine-tuning, scratch-E, scratch-B) is one call of ``run_stage`` with a model
factory, the data and training arguments and the method's hooks; method scripts stay thin.
"""
import os
import random
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from models import list_models
from utils import dist as dist_utils
from utils.checkpoint import (check_writable, load_checkpoint, remove_stale_temporaries, run_lock, save_json,
                              spec_fields)
from utils.data import DATASETS, DeviceLoader, dataset_info, load_dataset, subset
from utils.engine import TrainConfig, Trainer
from utils.errors import UserError
from utils.flops import model_costs
from utils.hparams import hp, to_dict


@dataclass
class EvalDataArgs:
    dataset: str = hp("cifar10", "dataset", choices=sorted(DATASETS))
    data: Optional[str] = hp(None, "dataset folder (default ./data, then a torchvision download; "
                                   "Fashion-MNIST also /usr/share/datasets/fashion-mnist)")
    test_batch_size: int = hp(256, "evaluation batch size")
    test_subset: int = hp(0, "evaluate on the first N test images only (0 = all)")


@dataclass
class DataArgs(EvalDataArgs):
    batch_size: int = hp(64, "training batch size (global: split across torchrun ranks)")
    train_subset: int = hp(0, "train on the first N training images only (0 = all; for CPU-scale runs)")


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
    arch: str = hp("vgg", "architecture", choices=list_models())
    depth: int = hp(16, "depth")
    width: float = hp(1.0, "VGG: scale every default layer width by this factor (small models for CPU runs)")
    detach_shortcut: bool = hp(False, "ResNet: cut the gradient through the downsampling shortcut, as the "
                                      "reference does (its bug B1)")
    bn1d_init: str = hp("uniform", "VGG (L1 variant): init of the head's BatchNorm1d gamma; 'uniform' = U(0, 1), "
                                   "PyTorch 0.3.1's default that the reference ran with; 'ones' = today's default",
                        choices=["uniform", "ones"])
    compression_rate: Optional[float] = hp(None, "DenseNet: transitions keep floor(C // this) channels (the "
                                                 "reference's --compressionRate; 2 for its densenet-100); "
                                                 "default: the architecture's", flags=("--compressionRate",))


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


def lr_steps(args):
    """(milestone epochs, per-milestone factors or None) of a TrainArgs; as ``milestones`` drops a fraction
    that falls on epoch 0, its factor goes with it."""
    if args.schedule_unit == "epoch":
        steps = [int(m) for m in args.schedule]
    else:
        steps = [int(f * args.epochs) for f in args.schedule]
    kept = [i for i, m in enumerate(steps) if m > 0]
    return [steps[i] for i in kept], ([args.gammas[i] for i in kept] if args.gammas else None)


def load_data(data_args):
    for flag, size in (("--batch-size", getattr(data_args, "batch_size", 2)),
                       ("--test-batch-size", data_args.test_batch_size)):
        if size < 1:
            raise UserError(f"{flag} {size}: must be at least 1")
    if getattr(data_args, "batch_size", 2) < 2:  # BatchNorm in training mode needs 2 values per channel
        raise UserError(f"--batch-size {data_args.batch_size}: training needs at least 2 images per batch "
                        f"(BatchNorm's batch statistics)")
    for flag, n in (("--train-subset", getattr(data_args, "train_subset", 0)), ("--test-subset", data_args.test_subset)):
        if n < 0:
            raise UserError(f"{flag} {n}: must be 0 (all images) or a positive number of images")
    info = dataset_info(data_args.dataset)
    train, test = load_dataset(data_args.dataset, data_args.data)
    return info, subset(train, getattr(data_args, "train_subset", 0)), subset(test, data_args.test_subset)


def make_loaders(info, train, test, data_args, train_args, dinfo):
    common = dict(mean=info.mean, std=info.std, device=dinfo.device, rank=dinfo.rank,
                  world_size=dinfo.world_size, channels_last=train_args.channels_last)
    if data_args.batch_size % dinfo.world_size:
        raise UserError(f"--batch-size {data_args.batch_size} is not divisible by {dinfo.world_size} ranks")
    train_loader = DeviceLoader(train, data_args.batch_size, train=True, seed=train_args.seed, **common)
    test_loader = DeviceLoader(test, data_args.test_batch_size, train=False, **common)
    return train_loader, test_loader


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


def run_stage(stage, make_model, data_args, train_args, *, hooks=(), ckpt_extra=None, summary_extra=None,
              hparams=(), log=print):
    """Train ``make_model(info)`` (built after seeding) for one stage; write checkpoints and summary.json.

    Everything that can be wrong with the input is checked before anything is written.
    """
    validate_train_args(train_args)
    dinfo = dist_utils.setup(train_args.device)
    if not dinfo.is_main:
        log = _silent  # one copy of every line under torchrun
    held = ExitStack()
    try:
        info, train, test = load_data(data_args)
        seed_everything(train_args.seed)
        model = make_model(info)
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
        args_record = to_dict(data_args, train_args, *hparams)
        if resume_ckpt is not None:
            check_resume_args(resume_ckpt.get("args"), args_record, resume)
        if dinfo.is_main:
            check_writable(train_args.save)
            held.enter_context(run_lock(train_args.save))  # released in the finally below, also on failure
            remove_stale_temporaries(train_args.save)
        dist_utils.barrier(dinfo)
        costs = model_costs(model)
        train_loader, test_loader = make_loaders(info, train, test, data_args, train_args, dinfo)
        steps, gammas = lr_steps(train_args)
        config = TrainConfig(epochs=train_args.epochs, lr=train_args.lr, momentum=train_args.momentum,
                             weight_decay=train_args.weight_decay, nesterov=train_args.nesterov,
                             milestones=steps, gammas=gammas,
                             gamma=train_args.gamma, amp=train_args.amp, channels_last=train_args.channels_last,
                             compile=train_args.compile, progress=train_args.progress,
                             tensorboard=train_args.tensorboard)
        extra = {**spec_fields(model, info.name), "stage": stage, "args": args_record, **(ckpt_extra or {})}
        trainer = Trainer(model, train_loader, test_loader, config, train_args.save, dinfo, hooks, extra, log)
        if resume_ckpt is not None:
            trainer.load_state(resume_ckpt)
            log(f"resumed from {resume} at epoch {trainer.start_epoch}")
        log(f"{stage}: {model.spec.arch}-{model.spec.depth} on {info.name} ({train.labels.numel()} train / "
            f"{test.labels.numel()} test images), {costs['params']:,} params, {costs['flops']:,} FLOPs, "
            f"{train_args.epochs} epochs, lr {train_args.lr}, milestones {config.milestones}, "
            f"device {dinfo.device}, {dinfo.world_size} process(es)")
        start = time.time()
        result = trainer.fit()
        summary = {"stage": stage, **result, **costs, "arch": model.spec.arch, "depth": model.spec.depth,
                   "cfg": list(model.spec.cfg), "dataset": info.name, "seed": train_args.seed,
                   "world_size": dinfo.world_size, "wall_time_s": round(time.time() - start, 3),
                   "command": " ".join(sys.argv), "args": args_record, "folder": os.path.abspath(train_args.save),
                   **({"source": ckpt_extra["source"]} if ckpt_extra and "source" in ckpt_extra else {}),
                   **(summary_extra or {})}
        if dinfo.is_main:
            save_json(summary, os.path.join(train_args.save, "summary.json"))
            log(f"{stage} done: final {100 * summary['final_prec1']:.2f}%, best {100 * summary['best_prec1']:.2f}%"
                f" -> {train_args.save}")
        return summary
    finally:
        held.close()
        dist_utils.cleanup(dinfo)
