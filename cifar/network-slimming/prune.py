"""Prune a sparsity-trained VGG / PreResNet / DenseNet by one global threshold on the BN scales (Network
Slimming, Liu et al. 2017), keeping exactly what the reference's vggprune.py, resprune.py and denseprune.py
keep.

All |gamma| of the BatchNorm2d layers are sorted; thre = sorted[int(total * percent)]; channels with
|gamma| > thre survive. VGG shrinks physically; in PreResNet and DenseNet a BN that feeds a channel-selection
layer stays whole and the selection passes on its surviving channels, the other BNs shrink with their conv.
A layer left with no channel keeps its strongest one with a warning (the reference crashes; --strict makes
it an error). Reads our checkpoints or the reference main.py's (then give --arch vgg|resnet|densenet and
--depth). Writes SAVE/pruned.pth.tar and SAVE/prune.json (cfg, params, FLOPs, MACs, threshold, and the test
accuracy before, after, and of the masked network with pruned gamma/beta zeroed, when the data is at hand).
Example: python cifar/network-slimming/prune.py --dataset cifar10 --percent 0.7 \\
             --model logs/slimming/vgg19-sparse/checkpoint.pth.tar --save logs/slimming/vgg19-pruned70
"""
import os
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.branches import prune_main  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.hparams import hp  # noqa: E402
from utils.methods import get_method  # noqa: E402


@dataclass
class SlimmingArgs:
    percent: float = hp(0.5, "fraction of all BN channels below the global threshold, in (0, 1) "
                             "(reference READMEs: VGG-19 0.7, PreResNet-164 and DenseNet-40 0.4 / 0.6)")
    strict: bool = hp(False, "stop with an error when a layer would keep no channel, instead of keeping its "
                             "strongest channel")

    def __post_init__(self):  # checked while parsing, before any file is read
        if not 0 < self.percent < 1:
            raise UserError(f"--percent {self.percent}: must lie strictly between 0 and 1")


if __name__ == "__main__":
    run_main(lambda argv: prune_main(get_method("network-slimming"), __doc__, argv, extra_args=(SlimmingArgs,)))
