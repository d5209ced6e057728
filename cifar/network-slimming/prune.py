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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
