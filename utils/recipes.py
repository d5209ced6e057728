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


def capped_budget(stage, base_epochs, cap=2.0):
    """(epochs, record) of scratch-B by the cap rule (``cap`` None: no cap, network slimming's main_B.py); sets the
    run's schedule to the matching StepLR milestones. FLOPs in the reference convention at the network's input size,
    dense rule (the reference's counter skips exact zeros, which only a masked network has in numbers that matter;
    reference.md 2.13)."""
    from utils.stages import scratch_budget
    epochs, record = scratch_budget(stage.source, stage.model, stage.info, base_epochs, rule="dense",
                                    path=stage.source_path)
    ratio = record["flops_ratio"]
    if cap is not None and ratio >= cap:
        epochs, step = int(cap * base_epochs), int(cap * base_epochs / 3)
    else:
        step = int(epochs / 3)
    stage.train.schedule, stage.train.schedule_unit = step_schedule(epochs, step), "epoch"
    rule = (f"E = {cap:g} x {base_epochs} if r >= {cap:g}, else int({base_epochs} r)" if cap is not None
            else f"E = int({base_epochs} r), no cap")
    record.update({"budget_rule": f"{rule}; StepLR(int(E / 3))", "lr_step": step,
                   "schedule": list(stage.train.schedule)})
    return epochs, record
