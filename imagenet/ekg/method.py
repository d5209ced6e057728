"""EKG (Lee & Song, ECCV 2022) on ImageNet: the search, memory bank and distillation of utils/ekg.py (shared with
cifar/ekg) on torchvision's ResNets with every width prunable (models/imagenet_ekg.py), reading ImageFolder trees.

The official code has no ImageNet path (ekg.md 4), so the recipes are ours, stated here and in the README:
baseline and scratch-E / scratch-B train with the reference's ImageNet recipe (utils/recipes.py: 90 epochs, batch
256, lr 0.1 x0.1 every 30, wd 1e-4; scratch-B by its cap rule); fine-tuning keeps the official schedule (SGD-Nesterov,
100 epochs, lr 0.01 x0.2 at 30/60/80) with ImageNet's batch 256 and weight decay 1e-4; KD at T = 10 (the official
op_utils.py's value for 1000 classes, chosen by the number of classes); the search keeps <= 55% of FLOPs by default
(the poster's ResNet-50 row: 45.0% fewer FLOPs).
"""
from models import model_entry
from utils.ekg import EKGFolderHparams, EKGRule
from utils.methods import SearchMethod, register_method
from utils.recipes import IMAGENET_TRAIN, budget_preview, capped_budget

DEPTHS = model_entry("imagenet_resnet_ekg").depths
FINETUNE = {**IMAGENET_TRAIN, "epochs": 100, "lr": 0.01, "schedule": [30, 60, 80], "schedule_unit": "epoch",
            "gamma": 0.2, "nesterov": True}


@register_method
class ImageNetEKG(EKGRule, SearchMethod):
    key = "imagenet/ekg"
    archs = {"imagenet_resnet_ekg": DEPTHS}
    # torchvision's names: prune.py --arch resnet50 --model resnet50-0676ba61.pth (a bare state_dict) loads as it is
    arch_aliases = {f"resnet{d}": ("imagenet_resnet_ekg", d) for d in DEPTHS}
    flag_aliases = {"model": ("--pretrained",)}
    image_folder = True
    Hparams = EKGFolderHparams
    defaults = {"train": {**IMAGENET_TRAIN, "arch": "imagenet_resnet_ekg", "depth": 50, "save": "./logs/imagenet-ekg"},
                "prune": {"keep_flops": 0.55},
                "finetune": FINETUNE,
                "scratch": dict(IMAGENET_TRAIN)}

    def scratch_budget(self, stage, base_epochs):
        return capped_budget(stage, base_epochs)

    def budget_preview(self, flops_base, flops_pruned):
        return budget_preview(flops_base, flops_pruned)
