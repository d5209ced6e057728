"""Sparse Structure Selection (Huang and Wang, ECCV 2018) on ImageNet, as the reference ships it (reference.md 2.11,
5.5, 7.11: the authors' MXNet code, not PyTorch): the published ResNet-26/32/41 (pre-activation ResNet-50 with units
removed) trained from scratch with SSS's recipe: Nesterov SGD, lr 0.1, wd 1e-4, 100 epochs, x0.1 at 30, 60, 90,
its augmentation (--augment sss: bicubic crop, colour jitter 0.4, PCA lighting 0.1, its mean/std).

Scratch-B: E = int(100 r), r = FLOPs(ResNet-50) / FLOPs(pruned), LR steps every int(0.3 E) epochs. Our FLOPs give
exactly the README's table: ResNet-41 117 epochs [35, 70, 105], ResNet-32 145 [43, 86, 129], ResNet-26 179
[53, 106, 159].
"""
from utils.methods import register_method
from utils.published import PublishedOnly, scratch_options
from utils.stages import scratch_budget

PUBLISHED = {"resnet-26": ("sss-resnet26", "sss-resnet50"), "resnet-32": ("sss-resnet32", "sss-resnet50"),
             "resnet-41": ("sss-resnet41", "sss-resnet50")}
SSS_TRAIN = {"epochs": 100, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
             "schedule": [30, 60, 90], "schedule_unit": "epoch", "batch_size": 128, "test_batch_size": 256,
             "augment": "sss"}


def sss_budget(stage, base_epochs):
    """(epochs, record): E = int(base_epochs r), milestones every int(0.3 E) epochs (three drops)."""
    epochs, record = scratch_budget(stage.source, stage.model, stage.info, base_epochs, path=stage.source_path)
    step = int(0.3 * epochs)
    stage.train.schedule, stage.train.schedule_unit = [step, 2 * step, 3 * step], "epoch"
    record.update({"budget_rule": f"E = int({base_epochs} r); x0.1 every int(0.3 E) epochs", "lr_step": step,
                   "schedule": list(stage.train.schedule)})
    return epochs, record


@register_method
class ImageNetSSS(PublishedOnly):
    key = "imagenet/sparse-structure-selection"
    name = "sss"
    paper = "Huang and Wang, Data-Driven Sparse Structure Selection for Deep Neural Networks, ECCV 2018"
    archs = {"imagenet_preresnet": (50,)}
    arch_aliases = {"resnet50": ("imagenet_preresnet", 50)}
    image_folder = True
    published = PUBLISHED
    ScratchHparams = scratch_options(PUBLISHED, "SSS")
    defaults = {"train": {**SSS_TRAIN, "arch": "imagenet_preresnet", "depth": 50, "save": "./logs/imagenet-sss"},
                "scratch": dict(SSS_TRAIN)}

    def scratch_budget(self, stage, base_epochs):
        return sss_budget(stage, base_epochs)
