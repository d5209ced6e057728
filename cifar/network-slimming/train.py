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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
