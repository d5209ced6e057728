"""Fine-tune a slimmed network with its inherited weights and channel selections (reference
main_finetune.py: 40 epochs, constant lr 0.001, batch 64, momentum 0.9, wd 1e-4, no sparsity).

--arch / --depth are optional checks against the checkpoint (vgg, resnet/preresnet, densenet); a pruned.pth.tar
of the reference's resprune.py/denseprune.py/vggprune.py needs them.
Example: python cifar/network-slimming/finetune.py --refine logs/slimming/vgg19-pruned70/pruned.pth.tar \\
             --dataset cifar10 --save logs/slimming/vgg19-finetune70
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
