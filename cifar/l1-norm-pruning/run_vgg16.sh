#!/usr/bin/env bash
# L1-norm filter pruning of VGG-16 (Li et al. 2017), the whole experiment of the paper's Table 1:
# baseline (160 epochs) -> prune to VGG-16-A -> fine-tune (40 epochs, lr 0.001), scratch-E, scratch-B.
# Example: bash cifar/l1-norm-pruning/run_vgg16.sh --dataset cifar10 --save logs/vgg16 -- --device cuda
ARCH=vgg DEPTH=16 exec bash "$(dirname "$0")/experiment.sh" "$@"
