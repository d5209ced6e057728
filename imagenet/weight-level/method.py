"""Unstructured magnitude pruning on ImageNet (Han et al. 2015) as the reference's imagenet/weight-level runs it
(reference.md 4.4, 4.9, 5.5, 7.12), on torchvision's vgg16_bn and resnet50.

The rule is the CIFAR folder's (``utils.masks.weight_level_masks``): one global threshold over the |w| of every
Conv2d weight (ResNet's stem and downsample convs included; VGG's 4096-wide Linear head, BN and biases never),
the value at position int(total * percent) of the ascending sort; a weight is kept when |w| > threshold.
Fine-tune (10 epochs, lr 0.001) and scratch (90 epochs, lr 0.1, step 30; weights re-drawn with the sparsity-scaled
He init) keep the mask. Scratch-B: E = int(90 x FLOPs(dense) / FLOPs(nonzero weights)), StepLR(int(E / 3)),
no cap; ``--flops-ratio-one`` reproduces the released main_B.py's ratio of 1 (bug B3).

``--arch vgg16_bn`` is imagenet_vgg-16 and ``--arch resnet50`` imagenet_resnet-50 (``arch_aliases``); the BN of
vgg16_bn is an architecture option, not part of a name, so this folder defaults ``--batch-norm`` to on in every
stage: a bare torchvision state_dict then loads into torchvision's layout (``--no-batch-norm`` builds the plain
VGG, which the paper does not prune here).
"""
import copy
from dataclasses import dataclass

from utils.flops import count_flops
from utils.hparams import hp
from utils.masks import apply_masks, check_percent, weight_level_masks, weight_level_threshold
from utils.methods import MaskMethod, register_method
from utils.recipes import IMAGENET_FINETUNE, IMAGENET_TRAIN, budget_epochs, capped_budget

SCRATCH_EPOCHS = IMAGENET_TRAIN["epochs"]


@dataclass
class ImageNetWeightLevelArgs:
    percent: float = hp(0.1, "fraction of all conv weights to prune, in (0, 1) (the reference prune.py's default "
                             "0.1; its README and the paper: 0.3 and 0.6)")

    def __post_init__(self):  # checked while parsing, before a 100M-weight checkpoint is read
        check_percent(self.percent)


@dataclass
class ImageNetWeightLevelScratchArgs:
    flops_ratio_one: bool = hp(False, "scratch-B: reproduce the reference's bug B3 (main_B.py measures the FLOPs of "
                                      "the pruned model before loading its weights, so the ratio is 1: 90 epochs, "
                                      "step 30, the same as scratch-E); default: the intended int(90 r) epochs, "
                                      "StepLR(int(E / 3))")


def describe(model, masks, percent, base_epochs=SCRATCH_EPOCHS):
    """prune.json's extras: the threshold, and the scratch-B budget scratch.py will train for the recipe's epochs
    (with and without --flops-ratio-one), from the dense FLOPs of this network and the nonzero FLOPs of the
    pruned one."""
    pruned = copy.deepcopy(model)
    apply_masks(pruned, masks)
    f_dense, f_sparse = count_flops(model, rule="dense"), count_flops(pruned, rule="nonzero")
    epochs, step = budget_epochs(base_epochs, f_dense / f_sparse, cap=None)
    b3_epochs, b3_step = budget_epochs(base_epochs, 1.0, cap=None)
    return {"threshold": weight_level_threshold(model, percent), "flops_dense": f_dense,
            "flops_ratio_dense": f_dense / f_sparse, "scratch_b_base_epochs": base_epochs,
            "scratch_b_epochs": epochs, "scratch_b_lr_step": step,
            "scratch_b_epochs_flops_ratio_one": b3_epochs, "scratch_b_lr_step_flops_ratio_one": b3_step}


def budget(stage, base_epochs):
    """Scratch-B (epochs, record): no cap, nonzero FLOPs, or the ratio of 1 with --flops-ratio-one (bug B3)."""
    source = stage.source
    if "base_model" not in source and "model" not in source:
        # a reference pruned.pth.tar (no spec): weight-level pruning keeps the architecture, so the base is the
        # network itself; the generic fallback builds arch/depth without its options (vgg16_bn's BN)
        source = {**source, "base_model": stage.model.spec.to_dict()}
    return capped_budget(stage, base_epochs, cap=None, rule="nonzero", ratio_one=stage.hparams.flops_ratio_one,
                         source=source)


@register_method
class ImageNetWeightLevel(MaskMethod):
    key = "imagenet/weight-level"
    name = "weight-level"
    paper = "Han et al., Learning both Weights and Connections for Efficient Neural Networks, NIPS 2015"
    # the rule is defined for any conv network; the paper's two are vgg16_bn and resnet50
    archs = {"imagenet_vgg": (11, 13, 16, 19), "imagenet_resnet": (18, 34, 50, 101, 152)}
    arch_aliases = {"vgg16_bn": ("imagenet_vgg", 16), "resnet50": ("imagenet_resnet", 50)}  # the reference's names
    image_folder = True
    flag_aliases = {"model": ("--pretrained",)}  # prune.py --pretrained FILE: torchvision's weights, as a file
    Hparams = ImageNetWeightLevelArgs
    ScratchHparams = ImageNetWeightLevelScratchArgs
    defaults = {"train": {**IMAGENET_TRAIN, "arch": "vgg16_bn", "batch_norm": True, "save": "./logs/imagenet-wl"},
                "prune": {"batch_norm": True},
                "finetune": {**IMAGENET_FINETUNE, "epochs": 10, "batch_norm": True},
                "scratch": {**IMAGENET_TRAIN, "batch_norm": True}}

    def select(self, model, ctx, masks=None):
        return weight_level_masks(model, ctx.hparams.percent, masks=masks)

    def describe(self, model, masks, ctx):
        return describe(model, masks, ctx.hparams.percent)

    def scratch_budget(self, stage, base_epochs):
        return budget(stage, base_epochs)
