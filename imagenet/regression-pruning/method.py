"""Channel pruning by LASSO regression (He, Zhang, Sun, ICCV 2017) on ImageNet (reference.md 2.9, 2.10, 5.5, 7.9).

prune.py runs the algorithm (utils/lasso.py's RegressionRule, shared with cifar/regression-pruning) on a trained
VGG-16 (no BN; every conv but conv5 by default, or --widths vgg16_5x.widths for the official VGG-16-5x widths) or
ResNet-50 (each bottleneck's input selection in front of conv1, conv1 and conv2 outputs; conv3 reconstructed towards
the original block output plus the shortcut's error; --widths resnet50_2x.widths for ResNet-50-2x's), on 5,000
calibration images x 10 positions. scratch.py also trains the published networks by name, as the reference does
(--model vgg-5x | resnet-2x; ResNet-50-2x reads the 16 input selections of its filter.pkl, in models/data/).
Scratch-E: 90 epochs, lr 0.1 (0.01 for VGG-16-5x, as the reference's README runs it), step 30; scratch-B: the cap
rule (VGG-5x r = 4.40: 180 epochs, step 60; ResNet-2x r = 1.495: 134 epochs, step 44; the reference's README says
132, its own counter gives 134, bug B15).
"""
from utils.lasso import RegressionRule
from utils.methods import register_method
from utils.published import PublishedArchitectures, scratch_options
from utils.recipes import IMAGENET_FINETUNE, IMAGENET_TRAIN, budget_preview, capped_budget

PUBLISHED = {"vgg-5x": ("vgg-5x", "vgg_official"), "resnet-2x": ("resnet50-2x", "resnet50_official")}


@register_method
class ImageNetRegressionPruning(PublishedArchitectures, RegressionRule):
    key = "imagenet/regression-pruning"
    name = "regression-pruning"
    paper = "He, Zhang, Sun, Channel Pruning for Accelerating Very Deep Neural Networks, ICCV 2017"
    archs = {"imagenet_vgg": (16,), "imagenet_resnet": (50,)}
    arch_aliases = {"vgg16": ("imagenet_vgg", 16), "resnet50": ("imagenet_resnet", 50)}
    image_folder = True
    published = PUBLISHED
    ScratchHparams = scratch_options(PUBLISHED, "regression-pruning")
    defaults = {"train": {**IMAGENET_TRAIN, "arch": "imagenet_resnet", "depth": 50,
                          "save": "./logs/imagenet-regression"},
                "finetune": dict(IMAGENET_FINETUNE),
                "scratch": dict(IMAGENET_TRAIN)}

    def scratch_budget(self, stage, base_epochs):
        return capped_budget(stage, base_epochs)

    def budget_preview(self, flops_base, flops_pruned):
        return budget_preview(flops_base, flops_pruned)
