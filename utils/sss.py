"""Sparse Structure Selection's core (Huang and Wang, ECCV 2018), shared by cifar/sparse-structure-selection and
imagenet/sparse-structure-selection (algorithms.md 5).

Model: every residual block computes x + lambda_k F_k(x) with a learnable scalar lambda_k >= 0 (initialised to 1,
no weight decay): the architecture option ``block_lambda`` of resnet, preresnet and imagenet_preresnet, a parameter
``<block>.lambda_``. Objective: the data loss + weight decay on the weights + gamma ||lambda||_1.

Optimizer (``APGNAG``, the authors' core/optimizer.py, paraphrased): the weights take a Nesterov SGD step (torch's
SGD, weight decay included), the lambdas an accelerated proximal gradient step (APG with Nesterov momentum, the
paper's reformulation, so no extra forward or backward pass), both from the same backward pass; with lr eta,
momentum mu and velocity v (0 at first), per step and in this order:

    v <- mu v;  z <- lambda - eta grad;  z <- S_{eta gamma}(z);  v <- z - lambda + v;  lambda <- z + mu v;
    lambda <- max(lambda, 0)

where S_a(z) = sign(z) max(|z| - a, 0) is the proximal step of the L1 term (the LR schedule's current eta, so the
threshold decays with the LR). A lambda that reaches exactly 0 with no gradient pulling it back stays 0.

Pruning (``remove_blocks``): every block whose lambda is 0 is deleted; where that is the first block of a stage and
its shortcut is not the identity (a projection, or the CIFAR ResNet's zero-padding one), the shortcut stays as a
unit of its own, so the stage still changes resolution and width. The surviving lambdas are folded into the last
layer of their branch (a BN's weight and bias, or a conv's weight), so the pruned network is the plain one
(``sss=False`` in the authors' code) and computes what the trained network computed. The result is described by
``units``: per stage [blocks with a branch, whether the stage's first block kept its branch].
"""
import copy
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.engine import Hook
from utils.errors import UserError
from utils.hparams import hp
from utils.methods import ChannelMethod

LAMBDA = "lambda_"  # the parameter's name in a block


@dataclass
class SSSTrainArgs:
    # --gamma is the LR decay factor of every stage script, so the sparsity strength has its own name
    sss_gamma: float = hp(0.01, "Sparse Structure Selection's gamma, the weight of the L1 penalty on the block "
                                "lambdas: each step soft-thresholds them by lr x gamma (larger: shallower network; "
                                "the authors' default 0.01). Used when the network has --block-lambda")


@dataclass
class SSSPruneArgs:
    threshold: float = hp(0.0, "remove the blocks whose lambda is at most this: 0 is the paper's rule (exactly 0, and "
                               "the pruned network computes what the trained one did); a small value also removes "
                               "blocks whose lambda hovers just above 0 under a small final LR, which changes the "
                               "outputs by that block's share")


# ------------------------------------------------------------------------------------------ optimizer
class APGNAG(torch.optim.Optimizer):
    """Nesterov SGD for the weights and APG-NAG for the block lambdas, in one ``step()`` after one backward.

    Parameter groups: a group with ``apg`` False is SGD exactly as ``torch.optim.SGD`` (dampening 0, its
    single-tensor order of operations, momentum buffer ``momentum_buffer``); a group with ``apg`` True takes the
    step of the module docstring with its ``gamma`` (its weight decay is ignored: the penalty on lambda is the L1
    term). All state is tensors in ``self.state``, so ``state_dict`` / ``load_state_dict`` resume exactly.
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, nesterov=True, gamma=0.0, apg=False):
        if lr <= 0 or momentum < 0 or weight_decay < 0 or gamma < 0:
            raise ValueError(f"APGNAG: lr {lr} must be positive, momentum {momentum}, weight decay {weight_decay} "
                             f"and gamma {gamma} not negative")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                                      gamma=gamma, apg=apg))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (self._apg if group["apg"] else self._sgd)(group)
        return loss

    def _sgd(self, group):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            d_p = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
            if mu != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                else:
                    buf.mul_(mu).add_(d_p)
                d_p = d_p.add(buf, alpha=mu) if group["nesterov"] else buf
            p.add_(d_p, alpha=-lr)

    def _apg(self, group):
        lr, mu, gamma = group["lr"], group["momentum"], group["gamma"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "velocity" not in state:
                state["velocity"] = torch.zeros_like(p)
            v = state["velocity"]
            v.mul_(mu)
            z = p - lr * p.grad
            z = torch.sign(z) * torch.clamp(z.abs() - lr * gamma, min=0)
            v.add_(z - p)
            p.copy_(z + mu * v)
            p.clamp_(min=0)


def lambda_parameters(module):
    """[(name, parameter)] of the block lambdas of ``module``."""
    return [(n, p) for n, p in module.named_parameters() if n.rsplit(".", 1)[-1] == LAMBDA]


def sss_optimizer(gamma):
    """The engine's optimizer factory ``(module, TrainConfig) -> APGNAG``: the weights with the run's SGD settings
    (momentum, Nesterov, weight decay), the block lambdas with APG-NAG at ``gamma`` and no weight decay."""
    def make(module, config):
        lambdas = [p for _, p in lambda_parameters(module)]
        ids = {id(p) for p in lambdas}
        weights = [p for p in module.parameters() if id(p) not in ids]
        return APGNAG([{"params": weights, "weight_decay": config.weight_decay, "nesterov": config.nesterov},
                       {"params": lambdas, "weight_decay": 0.0, "nesterov": False, "gamma": gamma, "apg": True}],
                      lr=config.lr, momentum=config.momentum)
    return make


class LambdaLog(Hook):
    """Logs how many block lambdas are 0 after every epoch (what prune.py will remove)."""

    def on_train_start(self, trainer):
        n = len(lambda_parameters(trainer.module))
        trainer.log(f"sparse structure selection: {n} block lambdas, APG-NAG with gamma "
                    f"{trainer.optimizer.param_groups[-1]['gamma']:g}")

    def on_epoch_end(self, trainer, epoch):
        values = list(block_lambdas(trainer.module).values())
        zero = sum(v == 0 for v in values)
        shown = values if len(values) <= 20 else sorted(values)[::max(1, len(values) // 10)] + [max(values)]
        trainer.log(f"  lambdas: {zero} of {len(values)} at 0; {'' if len(values) <= 20 else 'deciles '}"
                    f"{' '.join(f'{v:.3g}' for v in shown)}")


# ------------------------------------------------------------------------------------------ pruning
def has_blocks(model):
    """Whether ``model`` is one of the residual networks SSS prunes (it describes its stages and blocks)."""
    return all(hasattr(model, a) for a in ("stages", "block_names", "branch_cfg", "units", "units_depth"))


def block_lambdas(model):
    """{block name: lambda} of the blocks with a branch scale, in block order."""
    if not has_blocks(model):
        return {}
    out = {}
    for name in model.block_names():
        block = model.get_submodule(name)
        if hasattr(block, LAMBDA):
            out[name] = float(getattr(block, LAMBDA).detach().reshape(-1)[0])
    return out


def check_prunable(model, path, flag="--model"):
    """A one-line error unless ``model`` has residual blocks with lambdas (trained by SSS)."""
    label = f"{model.spec.arch}-{model.spec.depth}"
    if not has_blocks(model):
        raise UserError(f"{flag} {path}: {label} has no residual blocks; Sparse Structure Selection removes whole "
                        f"residual blocks (resnet, preresnet, imagenet_preresnet)")
    if not block_lambdas(model):
        raise UserError(f"{flag} {path}: {label} has no block lambdas (trained without --block-lambda), so there is "
                        f"nothing to select blocks by; train it with this folder's train.py")


def dead_blocks(model, threshold=0.0):
    """The blocks whose lambda is at most ``threshold`` (the paper's rule: exactly 0)."""
    return [n for n, v in block_lambdas(model).items() if v <= threshold]


def _branch_layers(block):
    return sum(1 for n, m in block.named_children() if isinstance(m, nn.Conv2d) and n.startswith("conv"))


@torch.no_grad()
def fold_lambdas(model):
    """A copy of ``model`` whose lambdas are folded into the last layer of their branch and set to 1 (the same
    function: lambda scales an affine BN output or a bias-free conv output)."""
    model = copy.deepcopy(model)
    for name in model.block_names():
        block = model.get_submodule(name)
        if not hasattr(block, LAMBDA):
            continue
        lam = getattr(block, LAMBDA)
        end = getattr(block, block.branch_end)
        for p in (end.weight, end.bias):
            if p is not None:
                p.mul_(lam.to(p.dtype).reshape(-1)[0])
        lam.fill_(1.0)
    return model


@torch.no_grad()
def remove_blocks(model, dead):
    """(pruned network, units): ``model`` without the blocks named in ``dead`` (their lambda is 0), lambdas folded
    (see ``fold_lambdas``), built from its spec alone (units and cfg say what is left; no block lambdas)."""
    from models import build_from_spec
    from models.registry import ModelSpec
    dead = set(dead)
    branches = model.block_names()
    unknown = dead - set(branches)
    if unknown:
        raise ValueError(f"no block {sorted(unknown)[0]!r} with a branch in {model.spec.arch}")
    stages = model.stages()
    units = []
    for s, stage in enumerate(stages):
        kept = [n for n in stage if model.get_submodule(n).branch and n not in dead]
        keep_first = bool(model.units[s][1]) and bool(stage) and stage[0] not in dead
        units.append([len(kept), keep_first])
    slices, tail = model.branch_cfg()
    alive = [n not in dead for n in branches]
    cfg = [w for a, sl in zip(alive, slices) if a for w in sl] + list(tail)
    spec = model.spec
    options = copy.deepcopy(spec.options)
    options.pop("block_lambda", None)
    options["units"] = units
    if options.get("selected") is not None:  # PreResNet: one selection per branch block, then the final one
        sel = options["selected"]
        options["selected"] = [x for a, x in zip(alive, sel[:-1]) if a] + sel[-1:]
    new_spec = ModelSpec(spec.arch, model.units_depth(spec.depth, units), spec.num_classes, spec.in_channels,
                         spec.image_size, cfg, options)
    pruned = build_from_spec(new_spec)
    # module prefixes of the pruned network -> the unpruned network's
    mapping = {}
    for old, new in zip(stages, pruned.stages()):
        old_kept = [n for n in old if model.get_submodule(n).branch and n not in dead]
        new_branch = [n for n in new if pruned.get_submodule(n).branch]
        assert len(old_kept) == len(new_branch), (old, new)
        mapping.update(zip(new_branch, old_kept))
        shortcut = [n for n in new if not pruned.get_submodule(n).branch]
        if shortcut:  # the first unit's shortcut, whether its branch died now or before
            mapping[shortcut[0]] = old[0]
    source = fold_lambdas(model).state_dict()
    state = {}
    for key in pruned.state_dict():
        prefix = ".".join(key.split(".")[:2])
        state[key] = source[mapping[prefix] + key[len(prefix):]] if prefix in mapping else source[key]
    pruned.load_state_dict(state)
    return pruned.to(next(model.parameters()).device), units


def prune_network(model, threshold=0.0):
    """(pruned network, record): SSS's rule on a trained network with block lambdas."""
    lambdas = block_lambdas(model)
    dead = dead_blocks(model, threshold)
    if not dead:
        rule = "0" if threshold == 0 else f"at most {threshold:g}"
        warnings.warn(f"no block lambda is {rule} (the smallest is {min(lambdas.values()):.4g}): nothing is removed; "
                      f"a larger --sss-gamma (or more epochs) drives more of them to 0")
    pruned, units = remove_blocks(model, dead)
    return pruned, {**describe(model, pruned, dead, units), "threshold": threshold}


def describe(model, pruned, dead, units):
    lambdas = block_lambdas(model)
    layers = sum(_branch_layers(pruned.get_submodule(n)) for n in pruned.block_names())
    return {"units": units, "units_base": [list(u) for u in model.units], "blocks_base": len(model.block_names()),
            "blocks_pruned": len(pruned.block_names()), "removed_blocks": list(dead),
            "depth_pruned": layers + 2, "lambdas": lambdas}


# ------------------------------------------------------------------------------------------ the method
class SSSRule(ChannelMethod):
    """Sparse Structure Selection as a method: train.py trains the block lambdas with APG-NAG (``--sss-gamma``),
    prune.py removes the blocks whose lambda is 0 (``--threshold``). The CIFAR and ImageNet folders subclass it."""
    TrainHparams = SSSTrainArgs
    Hparams = SSSPruneArgs

    def validate(self, stage):
        gamma = getattr(stage.hparams, "sss_gamma", 0.0)
        if not gamma >= 0:
            raise UserError(f"--sss-gamma {gamma}: must not be negative")

    def trains_penalized(self, stage):
        """Under the L1 penalty on its block lambdas."""
        return bool(lambda_parameters(stage.model)) and stage.hparams.sss_gamma > 0

    def optimizer(self, stage):
        if not lambda_parameters(stage.model):
            return None  # the plain network (--no-block-lambda, or a pruned one): SGD from the run's flags
        return sss_optimizer(getattr(stage.hparams, "sss_gamma", 0.0) if stage.stage == "train" else 0.0)

    def train_hooks(self, stage):
        return [LambdaLog()] if lambda_parameters(stage.model) else []

    def check_arch(self, spec, path, flag="--model"):
        archs = self.prune_archs if self.prune_archs is not None else self.archs
        if spec.arch not in archs:
            raise UserError(f"{flag} {path}: {spec.arch}-{spec.depth} has no residual blocks with block lambdas; "
                            f"Sparse Structure Selection removes whole residual blocks of "
                            f"{', '.join(sorted(archs))} networks trained with --block-lambda")
        super().check_arch(spec, path, flag)

    def check_source(self, ckpt, model, path):
        check_prunable(model, path)

    def prune_network(self, model, ctx):
        if not ctx.hparams.threshold >= 0:
            raise UserError(f"--threshold {ctx.hparams.threshold}: must not be negative")
        pruned, record = prune_network(model, ctx.hparams.threshold)
        ctx.records["sss"] = record
        ctx.log(f"sss: {len(record['removed_blocks'])} of {record['blocks_base']} blocks have lambda 0 and go; "
                f"units {record['units']} (depth {record['depth_pruned']})")
        return {}, pruned.cpu()

    def describe(self, model, keep, ctx):
        return dict(ctx.records.get("sss", {}))
