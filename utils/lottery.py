"""Lottery-ticket stages (Frankle & Carbin 2019, as the paper re-runs them; reference.md 4.5, 4.6, 5.3), the
entry points the lottery_ticket/ scripts and the iterative driver call.

train    dense training that also saves its random initialisation (``init.pth.tar``, before the first
         step) and, with --rewind-epoch K, the weights after K epochs (``rewind_epochK.pth.tar``)
prune    utils.branches.mask_prune_main with the lottery methods of lottery_ticket/*/method.py: weight level
         (a fraction of the currently nonzero conv weights, one global threshold or per layer) or L1-norm
         filters (the fixed targets of Li et al., keeping the large, small or random filters)
ticket   the winning ticket (``ticket_main``): the mask on the saved init (or epoch-K) weights, trained
         with the mask enforced (utils.masks.MaskHook)
scratch  the random-init control (``masked_scratch_main``): the same mask on a fresh init, trained the
         same way
"""
import os
from dataclasses import dataclass
from typing import Optional

from models import build_from_spec
from utils.branches import CheckArgs, _pruned_model, scratch_main, train_main
from utils.checkpoint import load_checkpoint, load_state, save_checkpoint
from utils.engine import Hook
from utils.errors import UserError
from utils.hparams import build_parser, hp, parse
from utils.masks import MaskHook, apply_masks, checkpoint_masks, density
from utils.stages import DataArgs, TrainArgs, run_stage

INIT = "init.pth.tar"


def rewind_name(epoch):
    """File name of the weights a dense run saves after ``epoch`` epochs (``init.pth.tar`` for 0)."""
    return INIT if epoch == 0 else f"rewind_epoch{epoch}.pth.tar"


# ------------------------------------------------------------------------------------------- train
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


def lottery_train_main(description, argv=None, defaults=None):
    """Dense training (train_main) that saves init.pth.tar and, with --rewind-epoch K, the epoch-K weights."""

    def hooks(model_args, data_args, train_args, rewind):
        if not 0 <= rewind.rewind_epoch < train_args.epochs:
            raise UserError(f"--rewind-epoch {rewind.rewind_epoch}: must lie in [0, --epochs {train_args.epochs})")
        return [SaveInitHook(train_args.save, rewind.rewind_epoch)]

    return train_main(description, argv, defaults=defaults, hooks_factory=hooks, extra_args=(RewindArgs,))


# ------------------------------------------------------------------------------------------- ticket
@dataclass
class TicketArgs:
    pruned: Optional[str] = hp(None, "pruned checkpoint (pruned.pth.tar) whose mask defines the ticket; one "
                                     "without masks (the reference's) gives its nonzero pattern")
    init: Optional[str] = hp(None, "weights the survivors are rewound to: the dense run's init.pth.tar (the "
                                   "winning ticket) or its rewind_epochK.pth.tar (late rewinding)",
                             flags=("--model",))


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


def ticket_main(description, argv=None, defaults=None):
    """lottery_ticket.py / main_lottery.py: train the pruned network's mask on the rewound weights."""
    from utils.data import dataset_info
    defaults = {"save": "./logs/ticket", **(defaults or {})}
    classes = (TicketArgs, CheckArgs, DataArgs, TrainArgs)
    t, check, data_args, train_args = parse(build_parser(description, *classes, defaults=defaults), classes, argv)
    info = dataset_info(data_args.dataset)
    pruned_ckpt, model = _pruned_model(t.pruned, "--pruned", check, info, load_weights=False)
    init_ckpt = load_checkpoint(t.init, "--init")
    start, masks = build_ticket(pruned_ckpt, model, init_ckpt, t.pruned, t.init)
    state = {k: v.clone() for k, v in start.state_dict().items()}
    spec = model.spec

    def make_model(_info):
        fresh = build_from_spec(spec)
        fresh.load_state_dict(state)
        return fresh

    rewind = int(init_ckpt.get("epoch", 0) or 0)
    return run_stage("ticket", make_model, data_args, train_args, hooks=[MaskHook(masks)], hparams=(t, check),
                     ckpt_extra={"source": os.path.abspath(t.pruned), "init": os.path.abspath(t.init),
                                 "masks": masks},
                     summary_extra={"rewind_epoch": rewind, "density": density(masks)})


# ------------------------------------------------------------------------------------------- scratch
def masked_scratch_main(description, argv=None, defaults=None, reinit="sparse"):
    """cifar_scratch_no_longer.py / main_scratch_mask.py: the pruned checkpoint's mask on a fresh network,
    trained with the mask enforced (scratch_main's masked mode).

    reinit 'sparse' (weight level, reference.md 5.3): each masked conv weight is redrawn from
    N(0, sqrt(2 / (nnz / C_in))), wider as the layer gets sparser; 'dense' (the L1 lottery scratch):
    the model's ordinary He fan-out init (n = k*k*C_out, density not taken into account), masked."""
    if reinit == "sparse":
        return scratch_main(description, argv, defaults=defaults, masked=True)
    if reinit != "dense":
        raise ValueError(f"reinit must be 'sparse' or 'dense', not {reinit!r}")

    def init_fn(fresh, ckpt):
        apply_masks(fresh, checkpoint_masks(ckpt, fresh, "(the --scratch checkpoint)", "--scratch"))

    return scratch_main(description, argv, defaults=defaults, masked=True, init_fn=init_fn)
