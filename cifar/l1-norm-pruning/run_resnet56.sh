#!/usr/bin/env bash
# L1-norm filter pruning of ResNet-56 (Li et al. 2017), the whole experiment of the paper's Table 1:
# baseline (160 epochs) -> prune (-v A|B) -> fine-tune (40 epochs, lr 0.001), scratch-E, scratch-B.
# Example: bash cifar/l1-norm-pruning/run_resnet56.sh --dataset cifar10 -v B --save logs/resnet56 -- --device cuda
ARCH=resnet DEPTH=56 exec bash "$(dirname "$0")/experiment.sh" "$@"
