"""Train a slimmed architecture from scratch: scratch-E (--budget E, the baseline's 160 epochs) or
scratch-B (--budget B, int(160 x FLOPs(base) / FLOPs(pruned)) epochs, LR x0.1 at 50% and 75%).

Fresh initialisation; the cfg and the channel selections (which BN channels each selection layer passes
on) are the architecture and come from the pruned checkpoint, as in the reference's main_E.py / main_B.py.
FLOPs in the reference convention (dense rule, 32x32, one image); for a reference pruned.pth.tar the base
is the default network of that arch and depth.
Example: python cifar/network-slimming/scratch.py --scratch logs/slimming/vgg19-pruned70/pruned.pth.tar \\
             --budget B --dataset cifar10 --save logs/slimming/vgg19-scratchB70
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
