#!/usr/bin/env bash
# Lottery ticket vs random init, structured: VGG-16-A (L1-norm filter targets as masks), dense (160 epochs) ->
# prune -> winning ticket and random init (160 epochs each), at initial LR 0.1 and 0.01.
# Example: bash lottery_ticket/l1-norm-pruning/run_vgg16.sh --dataset cifar10 --seeds "1 2 3 4 5" -- --device cuda
METHOD=l1-norm ARCH=vgg DEPTH=16 VARIANTS=A exec bash "$(dirname "$0")/../experiment.sh" "$@"
