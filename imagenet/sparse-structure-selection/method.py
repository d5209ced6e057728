"""Sparse Structure Selection (Huang and Wang, ECCV 2018) on ImageNet (algorithms.md 5; reference.md 2.11, 5.5, 7.11).

The algorithm (utils/sss.py, shared with cifar/sparse-structure-selection) on the authors' pre-activation ResNet-50
(models.imagenet ``imagenet_preresnet``): train.py trains it with a lambda per residual unit (--block-lambda, on by
default here) by APG-NAG with --sss-gamma (the authors' 0.01), prune.py removes the units whose lambda is 0 (a
stage's first unit keeps its 1x1 projection shortcut) and writes the units per stage; fine-tune and scratch-E/B
train the result. The reference ships only the networks the authors published: scratch.py --model resnet-26 |
resnet-32 | resnet-41 trains them by name as before.

Recipe (the authors' config/cfgs.py; the reference's runs with sss=False): Nesterov SGD, lr 0.1, wd 1e-4, batch 128,
100 epochs, x0.1 at 30, 60, 90, SSS's augmentation (--augment sss). Scratch-B: E = int(100 r), r = FLOPs(ResNet-50) /
FLOPs(pruned), LR steps every int(0.3 E) epochs; our FLOPs give exactly the README's table: ResNet-41 117 epochs
[35, 70, 105], ResNet-32 145 [43, 86, 129], ResNet-26 179 [53, 106, 159]. Fine-tuning (not in SSS, which reports the
pruned network as trained): 20 epochs at a constant lr 0.001, the same recipe otherwise.
"""
from utils.methods import register_method
from utils.published import PublishedArchitectures, scratch_options
from utils.sss import SSSRule
from utils.stages import scratch_budget

PUBLISHED = {"resnet-26": ("sss-resnet26", "sss-resnet50"), "resnet-32": ("sss-resnet32", "sss-resnet50"),
             "resnet-41": ("sss-resnet41", "sss-resnet50")}
SSS_TRAIN = {"epochs": 100, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
             "schedule": [30, 60, 90], "schedule_unit": "epoch", "batch_size": 128, "test_batch_size": 256,
             "augment": "sss"}
SSS_FINETUNE = {**SSS_TRAIN, "epochs": 20, "lr": 0.001, "schedule": []}


def sss_epochs(base_epochs, ratio):
    """(E, step): E = int(base_epochs r), x0.1 every int(0.3 E) epochs (three drops)."""
    epochs = int(base_epochs * ratio)
    return epochs, int(0.3 * epochs)


def sss_budget(stage, base_epochs):
    """(epochs, record) of scratch-B by ``sss_epochs``; sets the run's schedule to its three drops."""
    _, record = scratch_budget(stage.source, stage.model, stage.info, base_epochs, path=stage.source_path)
    epochs, step = sss_epochs(base_epochs, record["flops_ratio"])
    stage.train.schedule, stage.train.schedule_unit = [step, 2 * step, 3 * step], "epoch"
    record.update({"budget_rule": f"E = int({base_epochs} r); x0.1 every int(0.3 E) epochs", "lr_step": step,
                   "schedule": list(stage.train.schedule)})
    return epochs, record


@register_method
class ImageNetSSS(PublishedArchitectures, SSSRule):
    key = "imagenet/sparse-structure-selection"
    name = "sss"
    paper = "Huang and Wang, Data-Driven Sparse Structure Selection for Deep Neural Networks, ECCV 2018"
    archs = {"imagenet_preresnet": (50,)}
    arch_aliases = {"resnet50": ("imagenet_preresnet", 50)}
    image_folder = True
    published = PUBLISHED
    ScratchHparams = scratch_options(PUBLISHED, "SSS")
    defaults = {"train": {**SSS_TRAIN, "arch": "imagenet_preresnet", "depth": 50, "block_lambda": True,
                          "save": "./logs/imagenet-sss"},
                "prune": {"test_batch_size": 128},
                "finetune": dict(SSS_FINETUNE),
                "scratch": dict(SSS_TRAIN)}

    def scratch_budget(self, stage, base_epochs):
        return sss_budget(stage, base_epochs)

    def budget_preview(self, flops_base, flops_pruned):
        epochs, step = sss_epochs(SSS_TRAIN["epochs"], flops_base / flops_pruned)
        return {"scratch_b_base_epochs": SSS_TRAIN["epochs"], "scratch_b_epochs": epochs, "scratch_b_lr_step": step}
