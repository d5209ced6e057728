"""ThiNet (Luo, Wu, Lin, ICCV 2017) on the CIFAR networks: channels chosen by how little the next layer's
output changes without them, and the next layer's kept weights rescaled by least squares.

The algorithm itself (sampling, the greedy on one Gram matrix per layer, least squares, the layer-by-layer
schedule) is utils/thinet.py, shared with imagenet/thinet. This file holds the CIFAR choices: which layers
(the paper prunes every VGG conv but the last block's; in a ResNet the first conv of each basic block, never a
block's output), the calibration data and the optional fine-tune between layers.
"""
from dataclasses import dataclass

import torch

from models import model_entry
from utils.engine import train_steps
from utils.errors import UserError
from utils.hparams import hp
from utils.methods import ChannelMethod, register_method
from utils.thinet import prune_layer_by_layer

PAPER_IMAGES = 10_000  # 10 images per class x 1,000 ImageNet classes, 10 samples each (100,000 samples)


@dataclass
class ThiNetArgs:
    percent: float = hp(0.5, "fraction of the channels removed from every pruned layer, in (0, 1): each keeps "
                             "int(C x (1 - percent)) (ThiNet-50: 0.5; ThiNet-30 keeps 30%: 0.7)")
    layers: list[str] = hp([], "channel groups to prune, in any order (they are pruned from the input on): group "
                               "names as prune.json lists them (conv1 ... for the VGGs, layer1.0.conv1 ... for the "
                               "ResNets), or 'all'; default: the paper's rule (every VGG conv but the last block's; "
                               "every ResNet block's first conv)")
    calib_images: int = hp(PAPER_IMAGES, "training images the statistics are sampled on (the paper's 10,000; "
                                         "capped at the training set's size, with a note)")
    samples_per_image: int = hp(10, "random (output channel, position) samples of the next layer per image (the "
                                    "paper's 10)")
    calib_batch_size: int = hp(100, "batch size of the statistics passes")
    seed: int = hp(1, "seed of the calibration images and of the samples")
    ft_between_iters: int = hp(0, "SGD steps of fine-tuning after each pruned layer (0: prune.py only prunes; "
                                  "the run scripts pass the paper's schedule)")
    ft_lr: float = hp(0.001, "learning rate of the fine-tuning between layers (the paper's, momentum 0.9, wd 5e-4)")
    ft_batch_size: int = hp(64, "batch size of the fine-tuning between layers")

    def __post_init__(self):  # before any file is read
        if not 0 < self.percent < 1:
            raise UserError(f"--percent {self.percent}: must lie strictly between 0 and 1 (the removed fraction)")
        for flag, value in (("--calib-images", self.calib_images), ("--samples-per-image", self.samples_per_image),
                            ("--calib-batch-size", self.calib_batch_size), ("--ft-batch-size", self.ft_batch_size)):
            if value < 1:
                raise UserError(f"{flag} {value}: must be at least 1")
        if self.ft_between_iters < 0 or not self.ft_lr > 0:
            raise UserError(f"--ft-between-iters {self.ft_between_iters} / --ft-lr {self.ft_lr}: iterations must "
                            f"not be negative, the LR must be positive")


def paper_layers(model):
    """The groups ThiNet prunes by default: in a VGG (a cfg with pooling) every conv before the last pooling,
    i.e. all but the last block, as ThiNet-Conv leaves conv5; in a ResNet every block's first conv."""
    groups = model.channel_groups()
    if "M" in model.cfg:
        last_pool = max(i for i, v in enumerate(model.cfg) if v == "M")
        return [g.name for g in groups if g.cfg_index < last_pool]
    return [g.name for g in groups]


def chosen_layers(model, layers):
    names = [g.name for g in model.channel_groups()]
    if not layers:
        return paper_layers(model)
    if layers == ["all"]:
        return names
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise UserError(f"--layers {' '.join(unknown)}: not a prunable layer of {model.spec.arch}-{model.spec.depth} "
                        f"(its layers: {', '.join(names[:6])}{', ...' if len(names) > 6 else ''})")
    return [n for n in names if n in set(layers)]  # from the input on


@register_method
class ThiNet(ChannelMethod):
    key = "cifar/thinet"
    name = "thinet"
    paper = "Luo, Wu, Lin, ThiNet: A Filter Level Pruning Method for Deep Neural Network Compression, ICCV 2017"
    archs = {"vgg": model_entry("vgg").depths, "resnet": model_entry("resnet").depths}
    Hparams = ThiNetArgs
    defaults = {"train": {"arch": "vgg", "depth": 16}}

    def prune_network(self, model, ctx):
        hp_ = ctx.hparams
        layers = chosen_layers(model, hp_.layers)
        model = model.to(ctx.device)
        loader = ctx.calibration_loader(hp_.calib_images, hp_.calib_batch_size, seed=hp_.seed)
        between = self._fine_tune(ctx) if hp_.ft_between_iters else None
        ctx.log(f"thinet: {len(layers)} layer(s) of {model.spec.arch}-{model.spec.depth}, keeping "
                f"{1 - hp_.percent:.0%} of each, {hp_.samples_per_image} samples per image on "
                f"{len(loader.labels)} calibration images")
        pruned, keep, records = prune_layer_by_layer(model, layers, 1 - hp_.percent, loader, hp_.samples_per_image,
                                                     hp_.seed, between, ctx.log)
        ctx.records["layers"] = records
        return keep, pruned.cpu()

    @staticmethod
    def _fine_tune(ctx):
        """ThiNet's short fine-tune after each layer: SGD, momentum 0.9, wd 5e-4, on augmented training images."""
        hp_ = ctx.hparams
        train = ctx.calibration_loader(hp_.calib_images, hp_.ft_batch_size, train_transform=True, seed=hp_.seed)

        def fine_tune(network):
            opt = torch.optim.SGD(network.parameters(), lr=hp_.ft_lr, momentum=0.9, weight_decay=5e-4)
            train_steps(network, train, hp_.ft_between_iters, opt, log=ctx.log)
        return fine_tune

    def describe(self, model, keep, ctx):
        return {"layer_records": ctx.records.get("layers", []), "keep_fraction": 1 - ctx.hparams.percent}
