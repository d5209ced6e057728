"""EKG (Lee & Song, ECCV 2022) on the CIFAR ResNet with projection shortcuts (models/resnet_ekg.py): the search,
memory bank and distillation of utils/ekg.py, shared with any folder whose networks have gated channel groups.

Recipes: the baseline and scratch-E / scratch-B train with this repository's CIFAR recipe (160 epochs, batch 64,
lr 0.1 x0.1 at 50% and 75%, wd 1e-4; EKG's own baseline recipe is not published); fine-tuning is the official one
(SGD-Nesterov, lr 0.01 x0.2 at epochs 30/60/80 of 100, wd 5e-4, batch 128).
"""
from models import model_entry
from utils.ekg import FINETUNE_RECIPE, EKGRule
from utils.methods import SearchMethod, register_method


@register_method
class EKG(EKGRule, SearchMethod):
    key = "cifar/ekg"
    archs = {"resnet_ekg": model_entry("resnet_ekg").depths}
    defaults = {"train": {"arch": "resnet_ekg", "depth": 56, "save": "./logs/ekg"}, "finetune": dict(FINETUNE_RECIPE)}
