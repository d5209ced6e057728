"""Lottery-ticket stages (Frankle & Carbin 2019, as the paper re-runs them; reference.md 4.5, 4.6, 5.3): what the
lottery_ticket/ methods and the iterative driver share.

train    dense training that also saves its random initialisation (``init.pth.tar``, before the first step)
         and, with --rewind-epoch K, the weights after K epochs (``rewind_epochK.pth.tar``): ``SaveInitHook``,
         returned by the lottery methods' ``train_hooks``
prune    utils.stages.prune with the lottery methods of lottery_ticket/*/method.py (MaskMethod): weight level (a
         fraction of the currently nonzero conv weights) or L1-norm filters (the fixed targets of Li et al.)
ticket   the winning ticket (``ticket``): the mask on the saved init (or epoch-K) weights, trained with the mask
         enforced (utils.masks.MaskHook)
scratch  the random-init control: utils.stages.scratch of the same method (the mask on a fresh init)
"""
import os
from dataclasses import dataclass
from typing import Optional

from models import build_from_spec
from utils.checkpoint import load_checkpoint, load_state, save_checkpoint
from utils.engine import Hook
from utils.errors import UserError
from utils.hparams import hp
from utils.masks import MaskHook, apply_masks, checkpoint_masks, density
from utils.methods import StageContext
from utils.stages import load_source, record_of, run_stage

INIT = "init.pth.tar"
TICKET_DEFAULTS = {"save": "./logs/ticket"}


def rewind_name(epoch):
    """File name of the weights a dense run saves after ``epoch`` epochs (``init.pth.tar`` for 0)."""
    return INIT if epoch == 0 else f"rewind_epoch{epoch}.pth.tar"


@dataclass
class RewindArgs:
    rewind_epoch: int = hp(0, "also save the weights after this many epochs as SAVE/rewind_epochK.pth.tar, "
                              "for tickets rewound to epoch K instead of the init (0 = init.pth.tar only)")


class SaveInitHook(Hook):
    """Save the weights the run starts from (before any step) and, optionally, those after K epochs.

    On a resumed run the start has long passed and its file exists, so nothing is rewritten; a run killed
    before its first checkpoint restarts from the same seed, so the rewritten init is identical."""

    def __init__(self, save_dir, rewind_epoch=0):
        self.save_dir, self.rewind_epoch = save_dir, rewind_epoch

    def _save(self, trainer, epoch):
        if not trainer.dist.is_main:
            return
        state = {k: v.detach().cpu().clone() for k, v in trainer.module.state_dict().items()}
        save_checkpoint({**trainer.ckpt_extra, "state_dict": state, "epoch": epoch},
                        os.path.join(self.save_dir, rewind_name(epoch)))

    def on_train_start(self, trainer):
        if trainer.start_epoch == 0:
            self._save(trainer, 0)

    def on_epoch_end(self, trainer, epoch):
        if self.rewind_epoch and epoch + 1 == self.rewind_epoch:
            self._save(trainer, self.rewind_epoch)


def check_rewind(rewind_epoch, epochs):
    if not 0 <= rewind_epoch < epochs:
        raise UserError(f"--rewind-epoch {rewind_epoch}: must lie in [0, --epochs {epochs})")


class LotteryTraining:
    """Mix-in of the lottery methods: dense training saves the initialisation (and the epoch-K weights)."""
    TrainHparams = RewindArgs

    def validate(self, stage):
        if stage.stage == "train":
            check_rewind(stage.hparams.rewind_epoch, stage.train.epochs)

    def train_hooks(self, stage):
        if stage.stage != "train":
            return []
        return [SaveInitHook(stage.train.save, stage.hparams.rewind_epoch)]


# ------------------------------------------------------------------------------------------- ticket
@dataclass
class TicketArgs:
    pruned: Optional[str] = hp(None, "pruned checkpoint (pruned.pth.tar) whose mask defines the ticket; one "
                                     "without masks (the reference's) gives its nonzero pattern")
    init: Optional[str] = hp(None, "weights the survivors are rewound to: the dense run's init.pth.tar (the "
                                   "winning ticket) or its rewind_epochK.pth.tar (late rewinding)",
                             flags=("--model",))
    arch: Optional[str] = hp(None, "architecture; checked against the checkpoint (needed for the reference's)")
    depth: Optional[int] = hp(None, "depth; checked against the checkpoint (needed for the reference's)")


def build_ticket(pruned_ckpt, model, init_ckpt, pruned_path, init_path):
    """(start model, masks): ``model``'s architecture with the init checkpoint's weights, masked."""
    masks = checkpoint_masks(pruned_ckpt, model, pruned_path, "--pruned")
    if "model" in init_ckpt and init_ckpt["model"] != model.spec.to_dict():
        raise UserError(f"--init {init_path}: holds {init_ckpt['arch']}-{init_ckpt['depth']} with cfg "
                        f"{init_ckpt['cfg']}, not the pruned network's {model.spec.arch}-{model.spec.depth}")
    start = build_from_spec(model.spec)
    load_state(start, init_ckpt["state_dict"], init_path, "--init")
    apply_masks(start, masks)
    return start, masks


def ticket(method, args, data_args, train_args, hparams=None, *, options=None, log=print):
    """lottery_ticket.py / main_lottery.py: train the pruned network's mask on the rewound weights."""
    from utils.data import dataset_info
    info = dataset_info(data_args.dataset)
    pruned_ckpt, model = load_source(args.pruned, "--pruned", info, args.arch, args.depth, options, method,
                                     load_weights=False)
    init_ckpt = load_checkpoint(args.init, "--init")
    start, masks = build_ticket(pruned_ckpt, model, init_ckpt, args.pruned, args.init)
    state = {k: v.clone() for k, v in start.state_dict().items()}
    spec = model.spec

    def make_model(_info):
        fresh = build_from_spec(spec)
        fresh.load_state_dict(state)
        return fresh

    rewind = int(init_ckpt.get("epoch", 0) or 0)
    stage = StageContext("ticket", hparams, data_args, train_args, info, model=model, source=pruned_ckpt,
                         source_path=args.pruned, masks=masks, log=log)
    return run_stage(make_model, data_args, train_args, method=method, stage=stage, hooks=[MaskHook(masks)],
                     ckpt_extra={"source": os.path.abspath(args.pruned), "init": os.path.abspath(args.init),
                                 "masks": masks},
                     summary_extra={"rewind_epoch": rewind, "density": density(masks)},
                     args_record=record_of(args, data_args, train_args), log=log)
