#!/usr/bin/env bash
# Lottery ticket vs random init, structured: ResNet-110-A and -B (L1-norm filter targets as masks; one dense run
# shared by both), winning ticket and random init (160 epochs each), at initial LR 0.1 and 0.01.
# Example: bash lottery_ticket/l1-norm-pruning/run_resnet110.sh --dataset cifar10 -v "A B" -- --device cuda
METHOD=l1-norm ARCH=resnet DEPTH=110 VARIANTS="A B" exec bash "$(dirname "$0")/../experiment.sh" "$@"
