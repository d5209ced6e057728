#!/usr/bin/env bash
# Lottery ticket vs random init, unstructured, the paper's CIFAR "ResNet-50" (the reference's bearpaw ResNet:
# basic blocks, 8 per stage, 1x1 conv + BN shortcuts): dense (160 epochs) -> rounds of (prune 20% of the
# remaining conv weights, winning ticket, random init), at initial LR 0.1 and 0.01.
# Example: bash lottery_ticket/weight-level/run_resnet50.sh --dataset cifar10 --rounds 5 -- --device cuda
METHOD=weight-level ARCH=resnet_wl DEPTH=50 exec bash "$(dirname "$0")/../experiment.sh" "$@"
