"""Train a ThiNet network from scratch: a published one by name (--model thinet-conv, thinet-gap, thinet-tiny, thinet-30,
thinet-50, thinet-70, as the reference's main_E.py / main_B.py) or one pruned by prune.py (--scratch). scratch-E
(--budget E): 90 epochs, step 30; scratch-B (--budget B): the cap rule, 180 epochs / step 60 when FLOPs(base) /
FLOPs(pruned) >= 2 (the reference crashes there, bug B4), else int(90 r) epochs / a third (ThiNet-70: 141 / 47).
The VGG networks train at --lr 0.01, as the reference's README runs them.

Example: python imagenet/thinet/scratch.py --data /data/imagenet --model thinet-70 --budget B \\
             --save logs/imagenet-thinet/thinet70/scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
