"""L1-norm filter pruning (Li, Kadav, Durdanovic, Samet, Graf, ICLR 2017): the selection rule.

Each filter scores the sum of |W| over its (C_in, k, k) weights, computed on the trained, unpruned weights
of its layer ("independent" strategy); a layer keeps its int(C_out * keep_ratio) best filters, in their
original order. Which layers and how much follow the paper's configurations, exactly as the reference
repo's vggprune.py / res56prune.py / res110prune.py hard-code them.
"""
from dataclasses import dataclass

from models import model_entry
from utils.errors import UserError
from utils.hparams import hp
from utils.methods import ChannelMethod, register_method
from utils.surgery import keep_largest, l1_filter_scores

# VGG-16-A: conv1_1 and conv4_1..conv5_3 keep half their filters (64 -> 32, 512 -> 256); the reference
# writes the target widths out, which for the default widths is the same thing.
VGG16_A_KEEP = {1: 0.5, 8: 0.5, 9: 0.5, 10: 0.5, 11: 0.5, 12: 0.5, 13: 0.5}

# ResNet: layer ids number every conv in module order from 1 (the stem); block j's first conv is 2j.
# (skipped layer ids, prune fraction of stages 1, 2, 3, last layer id of stages 1 and 2)
RESNET_RULES = {
    (56, "A"): ({16, 20, 38, 54}, (0.1, 0.1, 0.1), (18, 36)),
    (56, "B"): ({16, 18, 20, 34, 38, 54}, (0.6, 0.3, 0.1), (18, 36)),
    (110, "A"): ({36}, (0.5, 0.0, 0.0), (36, 72)),
    (110, "B"): ({36, 38, 74}, (0.5, 0.4, 0.3), (36, 72)),
}


def select_vgg16(model):
    keep = {}
    for k, group in enumerate(model.channel_groups(), start=1):
        ratio = VGG16_A_KEEP.get(k, 1.0)
        if ratio == 1.0:
            continue  # kept whole without computing norms, as the reference does
        conv = model.get_submodule(group.out[0])
        keep[group.cfg_index] = keep_largest(l1_filter_scores(conv.weight), int(conv.out_channels * ratio))
    return keep


def select_resnet(model, variant):
    skip, fractions, bounds = RESNET_RULES[(model.spec.depth, variant)]
    keep = {}
    for j, group in enumerate(model.channel_groups(), start=1):
        layer_id = 2 * j
        if layer_id in skip:
            continue
        stage = 0 if layer_id <= bounds[0] else 1 if layer_id <= bounds[1] else 2
        conv = model.get_submodule(group.out[0])
        num_keep = int(conv.out_channels * (1 - fractions[stage]))
        keep[group.cfg_index] = keep_largest(l1_filter_scores(conv.weight), num_keep)
    return keep


def select(model, variant="A"):
    """{cfg index: kept filter positions} for VGG-16-A, ResNet-56-A/B or ResNet-110-A/B."""
    if model.spec.arch == "vgg":
        if variant != "A":
            raise UserError(f"-v {variant}: VGG-16 has only the A configuration in Li et al.")
        return select_vgg16(model)
    return select_resnet(model, variant)


@dataclass
class L1Hparams:
    variant: str = hp("A", "ResNet-56/110 configuration A or B (VGG-16 has only A)", flags=("-v",),
                      choices=["A", "B"])


@register_method
class L1Norm(ChannelMethod):
    key = "cifar/l1-norm-pruning"
    name = "l1-norm"
    paper = "Li et al., Pruning Filters for Efficient ConvNets, ICLR 2017"
    archs = {"vgg": model_entry("vgg").depths, "resnet": model_entry("resnet").depths}  # what train.py trains
    prune_archs = {"vgg": (16,), "resnet": (56, 110)}  # the paper's configurations
    Hparams = L1Hparams
    defaults = {"train": {"arch": "vgg", "depth": 16}}

    def select(self, model, ctx):
        return select(model, ctx.hparams.variant)
