"""Prune a trained network by weight magnitude (Han et al. 2015), as the reference's cifar_prune.py does.

One global threshold over the |w| of every conv weight: the value at position int(total * percent) of the
ascending sort; weights with |w| > threshold are kept, the others set to exactly 0. The network keeps its
size; the masks (bool, True = kept) are saved with it. Writes SAVE/pruned.pth.tar ({spec, state_dict, masks})
and SAVE/prune.json (nonzero params, FLOPs (nonzero-weight rule) and MACs before/after, density, threshold,
accuracy before/after when the dataset is at hand). --model may also be the reference's checkpoint (give
--arch/--depth) or a state_dict of a torch.nn.utils.prune-pruned network (X.weight_orig / X.weight_mask).
Example: python cifar/weight-level/prune.py --dataset cifar10 --percent 0.3 \\
             --model logs/wl/vgg19/checkpoint.pth.tar --save logs/wl/vgg19/p0.3/pruned
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
