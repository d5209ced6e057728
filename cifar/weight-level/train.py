"""Train the unpruned baseline for weight-level pruning (VGG-19-BN, PreResNet-110, DenseNet-40/100).

Reference recipe (its cifar.py): 160 epochs, batch 64, SGD lr 0.1 (x0.1 at epochs 80 and 120), momentum 0.9,
wd 1e-4. Models: vgg19_bn (--depth 19), preresnet_wl (--depth 110), densenet_wl (--depth 40; --depth 100
--compression-rate 2 is the reference's "DenseNet-100"), densenet_bc (--depth 100, DenseNet-BC-100). The
reference's names preresnet and densenet are accepted for preresnet_wl and densenet_wl.
Example: python cifar/weight-level/train.py --dataset cifar10 --arch vgg19_bn --depth 19 --save logs/wl/vgg19
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
