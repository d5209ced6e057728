"""The reference's ImageNet recipes (reference.md 3.3, 5.5), shared by the imagenet/ method folders.

Training: batch 256 (train and evaluation), SGD lr 0.1, momentum 0.9, wd 1e-4, 90 epochs, x0.1 every 30 epochs
(StepLR(30)). Fine-tuning: constant lr 0.001 (20 epochs for L1-norm). Scratch-B: the "cap rule" of the l1-norm,
regression-pruning and ThiNet main_B.py scripts: with r = FLOPs(base) / FLOPs(pruned), E = 2 x 90 and a step of 60
when r >= 2, else E = int(90 r) and a step of int(E / 3); the step is StepLR's, so a schedule of E = 106 drops at
35, 70 and 105.
"""
from utils.errors import UserError

IMAGENET_TRAIN = {"epochs": 90, "lr": 0.1, "schedule": [30, 60], "schedule_unit": "epoch", "batch_size": 256,
                  "test_batch_size": 256, "weight_decay": 1e-4, "momentum": 0.9}
IMAGENET_FINETUNE = {**IMAGENET_TRAIN, "lr": 0.001, "schedule": []}


def step_schedule(epochs, step):
    """StepLR(step) over ``epochs`` as milestone epochs."""
    if step < 1:
        raise UserError(f"a step schedule needs a step of at least 1 epoch (got {step} for {epochs} epochs)")
    return list(range(step, epochs, step))


def budget_epochs(base_epochs, ratio, cap=2.0):
    """(E, step) of the reference's ImageNet main_B.py scripts for a FLOPs ratio r: E = int(base_epochs r) and StepLR's
    step int(E / 3); with a ``cap``, E = cap x base_epochs (step a third of it) once r >= cap (None: no cap)."""
    if cap is not None and ratio >= cap:
        return int(cap * base_epochs), int(cap * base_epochs / 3)
    epochs = int(base_epochs * ratio)
    return epochs, int(epochs / 3)


def budget_preview(flops_base, flops_pruned, cap=2.0, base_epochs=IMAGENET_TRAIN["epochs"]):
    """prune.json's announcement of the scratch-B budget scratch.py will train for the recipe's epochs."""
    epochs, step = budget_epochs(base_epochs, flops_base / flops_pruned, cap)
    return {"scratch_b_base_epochs": base_epochs, "scratch_b_epochs": epochs, "scratch_b_lr_step": step}


def capped_budget(stage, base_epochs, cap=2.0, rule="dense", ratio_one=False, source=None):
    """(epochs, record) of scratch-B by ``budget_epochs``; sets the run's schedule to the matching StepLR milestones.
    The cap rule (``cap`` 2) is the l1-norm, regression-pruning and ThiNet scripts'; network slimming and weight level
    have none (``cap`` None). FLOPs in the reference convention at the network's input size, by ``rule``: 'dense',
    or 'nonzero' (only the nonzero conv weights of a masked network count; the reference's counter always skips
    exact zeros, which only a masked network has in numbers that matter, reference.md 2.13). ``ratio_one`` takes the
    ratio as 1 while still recording the measured one (the weight-level main_B.py's ordering bug B3). ``source``:
    the checkpoint to measure in place of ``stage.source``."""
    from utils.stages import scratch_budget
    _, record = scratch_budget(stage.source if source is None else source, stage.model, stage.info, base_epochs,
                               rule=rule, path=stage.source_path)
    epochs, step = budget_epochs(base_epochs, 1.0 if ratio_one else record["flops_ratio"], cap)
    if ratio_one:
        record["flops_ratio_one"] = True
    stage.train.schedule, stage.train.schedule_unit = step_schedule(epochs, step), "epoch"
    if ratio_one:
        text = f"ratio taken as 1 (bug B3): E = {base_epochs}"
    elif cap is not None:
        text = f"E = {cap:g} x {base_epochs} if r >= {cap:g}, else int({base_epochs} r)"
    else:
        text = f"E = int({base_epochs} r), no cap"
    record.update({"budget_rule": f"{text}; StepLR(int(E / 3)); FLOPs rule {rule}", "lr_step": step,
                   "schedule": list(stage.train.schedule)})
    return epochs, record
