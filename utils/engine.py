"""The training engine: one small loop with hooks, used by every method and every stage.

What is trained how is passed in: the objective (cross-entropy by default; distillation is another), the
optimizer and its LR schedule (SGD with the reference's epoch milestones by default; a schedule may step every
iteration), any iterable of (inputs, targets) batches as loaders (``set_epoch`` is called when they have it),
and an optional validation loader that then selects the best model instead of the test set.

Hooks are where methods plug in what they add to training:

=====================  ==========================================================================
``on_train_start``     once, after the optimizer exists (e.g. build masks)
``on_epoch_start``     before an epoch's first step
``extra_loss``         return a term added to the loss (distillation, penalties on activations)
``after_backward``     between backward and step: edit gradients (slimming's s*sign(gamma), masking)
``after_step``         after the optimizer step: re-apply masks so pruned weights stay exactly zero
``on_epoch_end``       after an epoch's training, before evaluation (SFP's soft zeroing)
``state_dict``         extra state saved in the checkpoint, restored by ``load_state_dict``
=====================  ==========================================================================
"""
import math
import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checkpoint import save_checkpoint
from utils.dist import DistInfo, all_reduce_sum, broadcast_buffers
from utils.errors import TrainingDiverged


@torch.no_grad()
def evaluate_topk(model, loader, device, amp=False, dist_info=None):
    """(mean loss, top-1 accuracy, top-5 accuracy) over the loader, as fractions; exact over all ranks' shards
    under DDP. With fewer than 5 classes top-5 is top-C (= 1)."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, device=device, dtype=torch.float64)  # loss sum, correct, correct in top 5, count
    for x, y in loader:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        totals[0] += F.cross_entropy(out.float(), y, reduction="sum").double()
        top = out.topk(min(5, out.shape[1]), dim=1).indices
        totals[1] += (top[:, 0] == y).sum()
        totals[2] += (top == y[:, None]).any(1).sum()
        totals[3] += y.numel()
    if dist_info is not None:
        all_reduce_sum(totals, dist_info)
    model.train(was_training)
    loss, correct, correct5, count = totals.tolist()
    return loss / max(count, 1), correct / max(count, 1), correct5 / max(count, 1)


def evaluate(model, loader, device, amp=False, dist_info=None):
    """(mean loss, accuracy as a fraction) over the loader; exact over all ranks' shards under DDP."""
    return evaluate_topk(model, loader, device, amp, dist_info)[:2]


def cross_entropy(trainer, inputs, outputs, targets):
    """The default objective: the reference's cross-entropy on the logits."""
    return F.cross_entropy(outputs, targets)


def sgd(module, config):
    """The default optimizer: SGD with momentum, weight decay and optional Nesterov from the TrainConfig."""
    return torch.optim.SGD(module.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=config.nesterov)


def epoch_schedule(optimizer, config, steps_per_epoch):
    """The default LR schedule, stepped once per epoch: x gamma at each milestone, or SFP's per-milestone factors
    (``gammas``, cumulative). Returns (scheduler, 'epoch'). With ``config.warmup_epochs``, Goyal et al.'s gradual
    warm-up first, stepped per iteration (see ``warmup_schedule``)."""
    if config.warmup_epochs:
        return warmup_schedule(optimizer, config, steps_per_epoch)
    if config.gammas:
        steps = sorted(zip(config.milestones, config.gammas))

        def factor(epoch):  # a plain function: LambdaLR saves only its epoch counter, so resume is exact
            return math.prod(g for m, g in steps if epoch >= m)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "epoch"
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones),
                                                gamma=config.gamma), "epoch"


def warmup_schedule(optimizer, config, steps_per_epoch):
    """Per iteration: the LR rises linearly from ``config.warmup_start_lr`` to ``config.lr`` over the first
    ``config.warmup_epochs`` epochs (Goyal et al. 2017, for a batch above the recipe's: start at the recipe's LR,
    reach the linearly scaled one), then the milestones' drops apply as in ``epoch_schedule``."""
    if not steps_per_epoch:
        raise ValueError("a warm-up needs a loader with a length (steps per epoch)")
    decays = sorted(zip(config.milestones, config.gammas or [config.gamma] * len(config.milestones)))
    ramp_steps = config.warmup_epochs * steps_per_epoch
    start = (config.warmup_start_lr if config.warmup_start_lr is not None else config.lr) / config.lr

    def factor(step):
        epoch = step // steps_per_epoch
        ramp = start + (1 - start) * min(1.0, step / ramp_steps)
        return ramp * math.prod(g for m, g in decays if epoch >= m)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "step"


def train_steps(model, loader, steps, optimizer, objective=cross_entropy, log=None):
    """``steps`` optimizer steps on batches of ``loader`` (cycled, epoch by epoch through ``set_epoch``), in
    training mode: the short fine-tunes some pruning rules run between layers (ThiNet). The mean loss."""
    model.train()
    total, done, epoch = 0.0, 0, 0
    while done < steps:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        for x, y in loader:
            loss = objective(None, x, model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            done += 1
            if done == steps:
                break
        epoch += 1
    if log is not None:
        log(f"  {steps} fine-tuning step(s), mean loss {total / max(done, 1):.4f}")
    return total / max(done, 1)


class Hook:
    def on_train_start(self, trainer):
        pass

    def on_epoch_start(self, trainer, epoch):
        pass

    def extra_loss(self, trainer, inputs, outputs, targets):
        return None

    def after_backward(self, trainer):
        pass

    def after_step(self, trainer):
        pass

    def on_epoch_end(self, trainer, epoch):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@dataclass
class TrainConfig:
    epochs: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    milestones: list = field(default_factory=list)
    gamma: float = 0.1
    gammas: list = None  # one factor per milestone, cumulative (SFP's --gammas); None = gamma at each
    warmup_epochs: float = 0  # gradual warm-up to lr over this many epochs (per-iteration schedule)
    warmup_start_lr: float = None  # where the warm-up starts (None: lr, i.e. no ramp)
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    progress: bool = True
    tensorboard: bool = True


class Trainer:
    CHECKPOINT = "checkpoint.pth.tar"
    BEST = "model_best.pth.tar"

    def __init__(self, model, train_loader, test_loader, config, save_dir, dist_info=None, hooks=(),
                 ckpt_extra=None, log=print, *, objective=cross_entropy, optimizer=sgd, schedule=epoch_schedule,
                 val_loader=None):
        """``objective(trainer, inputs, outputs, targets) -> loss``; ``optimizer(module, config) -> optimizer``;
        ``schedule(optimizer, config, steps_per_epoch) -> (scheduler, 'epoch' | 'step')``; ``val_loader``:
        the model kept as model_best is the best on it (default: the best on the test set, the reference's)."""
        self.cfg = config
        self.dist = dist_info or DistInfo()
        self.device = self.dist.device
        self.module = model.to(self.device)
        if config.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.model = self.module
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        if config.compile:
            self.model = torch.compile(self.model)
        self.train_loader, self.test_loader, self.val_loader = train_loader, test_loader, val_loader
        self.save_dir = save_dir
        self.hooks = list(hooks)
        self.ckpt_extra = dict(ckpt_extra or {})
        self.log = log if self.dist.is_main else (lambda *a, **k: None)
        self.objective = objective
        self.optimizer = optimizer(self.module, config)
        steps = len(train_loader) if hasattr(train_loader, "__len__") else None
        self.scheduler, self.schedule_unit = schedule(self.optimizer, config, steps)
        if self.schedule_unit not in ("epoch", "step"):
            raise ValueError(f"schedule unit must be 'epoch' or 'step', not {self.schedule_unit!r}")
        self.start_epoch, self.best_prec1, self.last_prec1 = 0, 0.0, None
        self.best_val, self.best_epoch = None, None
        self.elapsed = 0.0
        self.history = []
        self.epoch = 0
        self._writer = None

    # ------------------------------------------------------------------------------------ state
    def state(self, epoch):
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {**self.ckpt_extra, "state_dict": self.module.state_dict(), "epoch": epoch,
                "best_prec1": self.best_prec1, "last_prec1": self.last_prec1, "best_val": self.best_val,
                "best_epoch": self.best_epoch,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": rng, "hooks": [h.state_dict() for h in self.hooks], "elapsed": self.elapsed,
                "history": list(self.history)}

    def load_state(self, ckpt):
        self.module.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        for h, s in zip(self.hooks, ckpt.get("hooks", [])):
            h.load_state_dict(s)
        self.start_epoch = int(ckpt["epoch"])
        self.best_prec1 = float(ckpt["best_prec1"])
        self.last_prec1 = ckpt.get("last_prec1")
        self.best_val, self.best_epoch = ckpt.get("best_val"), ckpt.get("best_epoch")
        self.elapsed = float(ckpt.get("elapsed", 0.0))
        self.history = list(ckpt.get("history", []))

    # ------------------------------------------------------------------------------------ loops
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp)

    def train_epoch(self, epoch):
        self.model.train()
        if hasattr(self.train_loader, "set_epoch"):  # the data order of epoch e is a function of (seed, e)
            self.train_loader.set_epoch(epoch)
        for h in self.hooks:
            h.on_epoch_start(self, epoch)
        loss_sum = torch.zeros((), device=self.device)
        steps = 0
        batches = self.train_loader
        bar = None
        if self.cfg.progress and self.dist.is_main:
            from tqdm import tqdm
            bar = tqdm(total=len(self.train_loader) if hasattr(self.train_loader, "__len__") else None,
                       desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False, dynamic_ncols=True)
        for x, y in batches:
            with self._autocast():
                out = self.model(x)
                loss = self.objective(self, x, out, y)
                for h in self.hooks:
                    extra = h.extra_loss(self, x, out, y)
                    if extra is not None:
                        loss = loss + extra
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for h in self.hooks:
                h.after_backward(self)
            self.optimizer.step()
            if self.schedule_unit == "step":
                self.scheduler.step()
            for h in self.hooks:
                h.after_step(self)
            loss_sum += loss.detach().float()
            steps += 1
            if bar is not None:
                bar.update(1)
                if steps % 50 == 0:
                    value = loss.item()  # a sync every 50 steps, not every step
                    if not self.dist.enabled:  # only rank 0 has a bar: under DDP all ranks stop together below
                        self._check_finite(value, epoch)
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.4g}")
        if bar is not None:
            bar.close()
        mean = all_reduce_sum(loss_sum, self.dist).item() / max(1, steps * self.dist.world_size)
        self._check_finite(mean, epoch)
        return mean

    def _check_finite(self, value, epoch):
        if not math.isfinite(value):
            last = os.path.join(self.save_dir, self.CHECKPOINT)
            kept = f"the last good checkpoint is {last} (epoch {self.start_epoch_of_last()})" \
                if os.path.exists(last) else "no checkpoint had been written yet"
            raise TrainingDiverged(f"loss became {value} in epoch {epoch + 1}; stopped, {kept}")

    def start_epoch_of_last(self):
        return len(self.history)

    def evaluate(self, model=None, loader=None, top5=False):
        """(loss, top-1) on the test loader (or ``loader``); with ``top5``, (loss, top-1, top-5)."""
        if self.dist.enabled and model is None:
            # DDP syncs BN running statistics only at the start of a training forward, so after the last
            # step every rank holds its own; evaluate (and save) rank 0's, the ones in the checkpoint.
            broadcast_buffers(self.module, self.dist)
        out = evaluate_topk(model or self.module, loader or self.test_loader, self.device, self.cfg.amp, self.dist)
        return out if top5 else out[:2]

    # ------------------------------------------------------------------------------------ fit
    def writer(self):
        if self._writer is None and self.cfg.tensorboard and self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(os.path.join(self.save_dir, "tensorboard"))
        return self._writer

    def fit(self):
        for h in self.hooks:
            h.on_train_start(self)
        for epoch in range(self.start_epoch, self.cfg.epochs):
            self.epoch = epoch
            t0 = time.time()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss = self.train_epoch(epoch)
            if self.schedule_unit == "epoch":
                self.scheduler.step()
            for h in self.hooks:
                h.on_epoch_end(self, epoch)
            test_loss, prec1, prec5 = self.evaluate(top5=True)
            record = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "test_loss": test_loss, "prec1": prec1,
                      "prec5": prec5}
            if self.val_loader is not None:  # select on held-out training images, never on the test set
                _, val = self.evaluate(loader=self.val_loader)
                record["val_prec1"] = val
                is_best = self.best_val is None or val > self.best_val
                if is_best:
                    self.best_val, self.best_prec1, self.best_epoch = val, prec1, epoch + 1
            else:  # the reference's rule: the best test accuracy
                is_best = prec1 > self.best_prec1
                if is_best:
                    self.best_epoch = epoch + 1
                self.best_prec1 = max(prec1, self.best_prec1)
            self.last_prec1 = prec1
            self.elapsed += time.time() - t0
            self.history.append(record)
            val_note = f"  val {100 * record['val_prec1']:.2f}%" if "val_prec1" in record else ""
            self.log(f"epoch {epoch + 1:>4}/{self.cfg.epochs}  lr {lr:.4g}  train loss {train_loss:.4f}  "
                     f"test loss {test_loss:.4f}  acc {100 * prec1:.2f}% (top-5 {100 * prec5:.2f}%){val_note}  "
                     f"{'selected' if self.val_loader is not None else 'best'} {100 * self.best_prec1:.2f}%  "
                     f"({time.time() - t0:.1f}s)")
            if self.dist.is_main:
                w = self.writer()
                if w is not None:
                    w.add_scalar("train/loss", train_loss, epoch + 1)
                    w.add_scalar("train/lr", lr, epoch + 1)
                    w.add_scalar("test/loss", test_loss, epoch + 1)
                    w.add_scalar("test/prec1", prec1, epoch + 1)
                    w.add_scalar("test/prec5", prec5, epoch + 1)
                    if "val_prec1" in record:
                        w.add_scalar("val/prec1", record["val_prec1"], epoch + 1)
                    w.flush()
                state = self.state(epoch + 1)
                if is_best:
                    save_checkpoint(state, os.path.join(self.save_dir, self.BEST))
                save_checkpoint(state, os.path.join(self.save_dir, self.CHECKPOINT))
        if self._writer is not None:
            self._writer.close()
        out = {"final_prec1": self.last_prec1, "best_prec1": self.best_prec1, "best_epoch": self.best_epoch,
               "selected_on": "val" if self.val_loader is not None else "test", "epochs": self.cfg.epochs,
               "train_time_s": round(self.elapsed, 3),
               # every epoch's test accuracy, so that a run record alone shows whether training had converged
               "prec1_history": [h["prec1"] for h in self.history]}
        # top-5 of the last epoch and of the selected one (history entries from before top-5 was recorded lack it)
        out["final_prec5"] = self.history[-1].get("prec5") if self.history else None
        best = [h for h in self.history if h["epoch"] == self.best_epoch]
        out["best_prec5"] = best[0].get("prec5") if best else None
        if self.val_loader is not None:
            out["best_val_prec1"] = self.best_val
        return out
