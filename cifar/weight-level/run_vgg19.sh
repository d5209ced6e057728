#!/usr/bin/env bash
# Weight-level (unstructured) pruning of VGG-19-BN (Han et al. 2015; the paper's Table 6):
# baseline (160 epochs) -> prune --percent "P ..." (0.3/0.8 on CIFAR-10, 0.3/0.5 on CIFAR-100) -> fine-tune (40 epochs,
# lr 0.001), scratch-E, scratch-B, all with the mask enforced.
# Example: bash cifar/weight-level/run_vgg19.sh --dataset cifar10 --percent "0.3 0.8" --seeds "1 2 3 4 5" \
#              -- --device cuda
PROG="$(basename "$0")" NAME=vgg19_bn ARCH=vgg19_bn DEPTH=19 exec bash "$(dirname "$0")/experiment.sh" "$@"
