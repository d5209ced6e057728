#!/usr/bin/env bash
# Weight-level (unstructured) pruning of PreResNet-110 as the reference builds it (bottleneck, 12 blocks per
# stage; preresnet_wl): baseline (160 epochs) -> prune --percent P (0.3/0.8 on CIFAR-10, 0.3/0.5 on CIFAR-100)
# -> fine-tune (40 epochs, lr 0.001), scratch-E, scratch-B, all with the mask enforced.
# Example: bash cifar/weight-level/run_preresnet110.sh --dataset cifar100 --percent 0.5 -- --device cuda
PROG="$(basename "$0")" NAME=preresnet110 ARCH=preresnet_wl DEPTH=110 exec bash "$(dirname "$0")/experiment.sh" "$@"
