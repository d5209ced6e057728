"""ThiNet on ImageNet (Luo et al. 2017; reference.md 2.9, 2.10, 5.5, 7.10).

prune.py runs the algorithm (utils/thinet.py's ThiNetRule, shared with cifar/thinet) on a trained VGG-16 or
ResNet-50: by default every conv of VGG-16 but conv5 (ThiNet-Conv at --percent 0.5), or both inner convs of every
ResNet-50 bottleneck (ThiNet-30/50/70 at --percent 0.7/0.5/0.3), on 10,000 calibration images x 10 samples.
The reference ships only the published networks; scratch.py trains them by name (--model thinet-conv|gap|tiny|30|
50|70) as its main_E.py / main_B.py do: 90 epochs, lr 0.1 (0.01 for the VGGs, as its README runs them), step 30;
scratch-B by the cap rule (r >= 2: 180 epochs, step 60; else int(90 r) and a third: ThiNet-70 141 / 47). The
reference's main_B.py crashes for every network with r >= 2 (bug B4, a misspelt step variable); here they get the
intended 180 / 60.
"""
from utils.methods import register_method
from utils.published import PublishedArchitectures, scratch_options
from utils.recipes import IMAGENET_FINETUNE, IMAGENET_TRAIN, budget_preview, capped_budget
from utils.thinet import ThiNetRule

PUBLISHED = {"thinet-conv": ("thinet-conv", "vgg_official"), "thinet-gap": ("thinet-gap", "vgg_official"),
             "thinet-tiny": ("thinet-tiny", "vgg_official"), "thinet-30": ("thinet-30", "resnet50_official"),
             "thinet-50": ("thinet-50", "resnet50_official"), "thinet-70": ("thinet-70", "resnet50_official")}


@register_method
class ImageNetThiNet(PublishedArchitectures, ThiNetRule):
    key = "imagenet/thinet"
    name = "thinet"
    paper = "Luo, Wu, Lin, ThiNet: A Filter Level Pruning Method for Deep Neural Network Compression, ICCV 2017"
    archs = {"imagenet_vgg": (16,), "imagenet_resnet": (50,)}
    arch_aliases = {"vgg16": ("imagenet_vgg", 16), "resnet50": ("imagenet_resnet", 50)}
    image_folder = True
    published = PUBLISHED
    ScratchHparams = scratch_options(PUBLISHED, "ThiNet")
    defaults = {"train": {**IMAGENET_TRAIN, "arch": "imagenet_resnet", "depth": 50, "save": "./logs/imagenet-thinet"},
                "finetune": dict(IMAGENET_FINETUNE),
                "scratch": dict(IMAGENET_TRAIN)}

    def scratch_budget(self, stage, base_epochs):
        return capped_budget(stage, base_epochs)

    def budget_preview(self, flops_base, flops_pruned):
        return budget_preview(flops_base, flops_pruned)
