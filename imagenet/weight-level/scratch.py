"""Train a weight-level-pruned ImageNet network from scratch with its mask enforced (reference main_E.py /
main_B.py).

The full-size network keeps the pruned checkpoint's mask; its conv weights are re-drawn from N(0, sqrt(2 / n)),
n = nnz(mask) / C_in, then masked; BN and Linear keep their default init. --budget E: 90 epochs, lr 0.1, x0.1
every 30. --budget B: E = int(90 x FLOPs(dense) / FLOPs(nonzero weights)) epochs with StepLR(int(E / 3)), no cap
(prune.json lists the value); --flops-ratio-one reproduces the released main_B.py's bug B3 (ratio 1: 90 epochs,
step 30, the same as scratch-E).
Example: python imagenet/weight-level/scratch.py --data /data/imagenet --budget B \\
             --scratch logs/imagenet-wl/vgg16_bn/p0.3/pruned/pruned.pth.tar \\
             --save logs/imagenet-wl/vgg16_bn/p0.3/scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
