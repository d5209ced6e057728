"""Network Slimming on ImageNet (VGG-11-BN; reference.md 2.8, 3.2, 3.3, 4.2, 5.5): the sparsity penalty and the
global threshold run over every BatchNorm2d **and** BatchNorm1d (the two hidden FC layers are pruned too).

The reference's ImageNet prune.py does not build the small network: it saves the full one with the pruned
channels' gamma and beta zeroed (the "mask implementation"), which its fine-tuning trains with the gradients of
those gammas and betas zeroed after every backward (BN_grad_zero, always on in its training scripts). Here prune.py
writes both: SAVE/pruned.pth.tar (physically pruned: fine-tune, scratch-E, scratch-B read it) and SAVE/masked.pth.tar
(the mask implementation: ``finetune.py --refine SAVE/masked.pth.tar`` fine-tunes it as the reference does).
Scratch-B: E = int(90 r), StepLR(int(E / 3)), no cap; the reference's scratch-E crashes (bug B5: its step size is
never defined) and runs here with the intended 90 epochs, step 30.
"""
import torch

from models import model_entry
from utils.engine import Hook
from utils.errors import UserError
from utils.methods import ChannelMethod, register_method
from utils.recipes import IMAGENET_FINETUNE, IMAGENET_TRAIN, budget_preview, capped_budget
from utils.slimming import (BN_ALL, BNSparsity, SlimmingArgs, SparsityArgs, check_source, describe, masked_model,
                            select)


class BNGradZero(Hook):
    """After backward (and the sparsity subgradient): gamma and beta gradients times [gamma != 0], so channels whose
    gamma is exactly zero (the mask implementation's pruned ones) stay zero; the reference's BN_grad_zero."""

    def on_train_start(self, trainer):
        self.bns = [m for m in trainer.module.modules() if isinstance(m, BN_ALL) and m.weight is not None]

    @torch.no_grad()
    def after_backward(self, trainer):
        for m in self.bns:
            alive = (m.weight != 0).to(m.weight.dtype)
            for p in (m.weight, m.bias):
                if p.grad is not None:
                    p.grad.mul_(alive)


@register_method
class ImageNetSlimming(ChannelMethod):
    key = "imagenet/network-slimming"
    name = "network-slimming"
    paper = "Liu et al., Learning Efficient Convolutional Networks through Network Slimming, ICCV 2017"
    archs = {"imagenet_vgg_slim": model_entry("imagenet_vgg_slim").depths}
    prune_archs = {"imagenet_vgg_slim": model_entry("imagenet_vgg_slim").depths}
    arch_aliases = {"vgg": "imagenet_vgg_slim", "vgg11_bn": ("imagenet_vgg_slim", 11)}  # the reference's --arch
    image_folder = True
    save_masked = True
    Hparams = SlimmingArgs
    TrainHparams = SparsityArgs
    defaults = {"train": {**IMAGENET_TRAIN, "arch": "imagenet_vgg_slim", "depth": 11, "sparsity_regularization": True,
                          "s": 1e-5, "save": "./logs/imagenet-slimming"},
                "prune": {"percent": 0.5},
                "finetune": {**IMAGENET_FINETUNE, "epochs": 5},
                "scratch": dict(IMAGENET_TRAIN)}

    def trains_penalized(self, stage):
        return stage.hparams.sparsity_regularization

    def validate(self, stage):
        if stage.stage.startswith("scratch") and (stage.source or {}).get("mask_implementation"):
            raise UserError(f"--scratch {stage.source_path}: the mask implementation (masked.pth.tar) holds the full "
                            f"network; train the pruned architecture from SAVE/pruned.pth.tar")

    def train_hooks(self, stage):
        hooks = []
        if stage.stage == "train" and stage.hparams.sparsity_regularization:
            hooks.append(BNSparsity(stage.hparams.s, types=BN_ALL))
        return hooks + [BNGradZero()]  # after the sparsity step, as the reference orders them

    def select(self, model, ctx):
        return select(model, ctx.hparams.percent, ctx.hparams.strict, types=BN_ALL)

    def masked_model(self, model, keep, ctx):
        return masked_model(model, keep, types=BN_ALL)

    def describe(self, model, keep, ctx):
        return describe(model, keep, ctx.hparams.percent, ctx.hparams.strict, types=BN_ALL)

    def check_source(self, ckpt, model, path):
        check_source(ckpt, model, path, types=BN_ALL)

    def scratch_budget(self, stage, base_epochs):
        return capped_budget(stage, base_epochs, cap=None)

    def budget_preview(self, flops_base, flops_pruned):
        return budget_preview(flops_base, flops_pruned, cap=None)
