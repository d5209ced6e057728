"""Network Slimming (Liu, Li, Shen, Huang, Yan, Zhang, ICCV 2017) on CIFAR: sparsity on the BatchNorm2d scales,
then one global threshold on them (the rule: utils/slimming.py, shared with imagenet/network-slimming)."""
from models import model_entry
from utils.methods import ChannelMethod, register_method
from utils.slimming import BNSparsity, SlimmingArgs, SparsityArgs, check_source, describe, masked_model, select


@register_method
class NetworkSlimming(ChannelMethod):
    key = "cifar/network-slimming"
    name = "network-slimming"
    paper = "Liu et al., Learning Efficient Convolutional Networks through Network Slimming, ICCV 2017"
    archs = {a: model_entry(a).depths for a in ("vgg_slim", "preresnet", "densenet")}
    arch_aliases = {"vgg": "vgg_slim", "resnet": "preresnet"}  # the reference scripts' --arch
    Hparams = SlimmingArgs
    TrainHparams = SparsityArgs
    defaults = {"train": {"arch": "vgg_slim", "depth": 19, "save": "./logs/slimming"}}
    # the paper's settings (reference READMEs), for the run scripts and the study
    sparsity = {"vgg_slim": 1e-4, "preresnet": 1e-5, "densenet": 1e-5}

    def trains_penalized(self, stage):
        return stage.hparams.sparsity_regularization

    def train_hooks(self, stage):
        hp_ = stage.hparams
        return [BNSparsity(hp_.s)] if stage.stage == "train" and hp_.sparsity_regularization else []

    def select(self, model, ctx):
        return select(model, ctx.hparams.percent, ctx.hparams.strict)

    def masked_model(self, model, keep, ctx):
        return masked_model(model, keep)

    def describe(self, model, keep, ctx):
        return describe(model, keep, ctx.hparams.percent, ctx.hparams.strict)

    def check_source(self, ckpt, model, path):
        check_source(ckpt, model, path)
