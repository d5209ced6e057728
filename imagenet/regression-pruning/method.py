"""Channel pruning by LASSO regression (He, Zhang, Sun, ICCV 2017) on ImageNet, as the reference ships it
(reference.md 2.9, 2.10, 5.5, 7.9): the published VGG-16-5x and ResNet-50-2x trained from scratch. ResNet-50-2x
reads a fixed subset of each block's input in its first conv (the 16 selections of the reference's filter.pkl, in
models/data/). Scratch-E: 90 epochs, lr 0.1 (0.01 for VGG-16-5x, as the reference's README runs it), step 30;
scratch-B: the cap rule (VGG-5x r = 4.40: 180 epochs, step 60; ResNet-2x r = 1.495: 134 epochs, step 44; the
reference's README says 132, its own counter gives 134, bug B15).
"""
from utils.methods import register_method
from utils.published import PublishedOnly, scratch_options
from utils.recipes import IMAGENET_TRAIN, capped_budget

PUBLISHED = {"vgg-5x": ("vgg-5x", "vgg_official"), "resnet-2x": ("resnet50-2x", "resnet50_official")}


@register_method
class ImageNetRegressionPruning(PublishedOnly):
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
                "scratch": dict(IMAGENET_TRAIN)}

    def scratch_budget(self, stage, base_epochs):
        return capped_budget(stage, base_epochs)
