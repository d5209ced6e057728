#!/usr/bin/env bash
# Lottery ticket vs random init, unstructured (the paper's VGG-16 on CIFAR: the reference's vgg16_bn):
# dense (160 epochs) -> rounds of (prune 20% of the remaining conv weights, winning ticket, random init),
# at initial LR 0.1 and 0.01.
# Example: bash lottery_ticket/weight-level/run_vgg16.sh --dataset cifar10 --rounds 5 --seeds "1 2 3 4 5" -- --device cuda
METHOD=weight-level ARCH=vgg16_bn DEPTH=16 exec bash "$(dirname "$0")/../experiment.sh" "$@"
