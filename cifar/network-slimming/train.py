"""Train for Network Slimming: the unpruned baseline, or with -sr --s S the sparsity-regularised network
that prune.py slims (VGG-19, PreResNet-164, DenseNet-40).

--arch: vgg (the slimming VGG with a single linear head, model vgg_slim), resnet or preresnet (pre-activation
bottleneck ResNet with channel selection), densenet (DenseNet-40, growth 12, with channel selection).
Reference recipe (network-slimming main.py): 160 epochs, batch 64, SGD lr 0.1 (x0.1 at 50% and 75%),
momentum 0.9, wd 1e-4; -sr adds s * sign(gamma) to the gradient of every BatchNorm2d gamma before each
step (s = 1e-4 for VGG-19, 1e-5 for PreResNet-164 and DenseNet-40 in the reference READMEs). Whether
sparsity was on and s are recorded in the checkpoints and summary.json ("args").
Example: python cifar/network-slimming/train.py -sr --s 0.0001 --dataset cifar10 --arch vgg --depth 19 \\
             --save logs/slimming/vgg19-sparse
"""
import os
import sys
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from utils.branches import train_main  # noqa: E402
from utils.errors import run_main  # noqa: E402
from utils.hparams import hp  # noqa: E402
from utils.methods import get_method  # noqa: E402


@dataclass
class SparsityArgs:
    sparsity_regularization: bool = hp(False, "train with sparsity on the BN scales (L1 subgradient)",
                                       flags=("-sr",))
    s: float = hp(1e-4, "sparsity rate: s * sign(gamma) is added to every BN gamma's gradient")


def main(argv):
    method = get_method("network-slimming")
    return train_main(__doc__, argv, defaults={"arch": "vgg", "depth": 19, "save": "./logs/slimming"},
                      hooks_factory=lambda *parsed: method.train_hooks(parsed[-1]), extra_args=(SparsityArgs,),
                      arch_aliases=method.arch_aliases)


if __name__ == "__main__":
    run_main(main)
