#!/usr/bin/env bash
# Regression pruning on ResNet-56 (CIFAR) at 2x: baseline (160 epochs) -> LASSO + least squares on every block's
# first conv, half of its channels removed (--percent 0.5: 1.99x fewer FLOPs), each block's second conv reconstructed
# towards the original block output -> fine-tune (40 epochs, lr 0.001), scratch-E, scratch-B.
# Example: bash cifar/regression-pruning/run_resnet56.sh --dataset cifar10 --save logs/regression/resnet56 -- --device cuda
PERCENT=0.5 ARCH=resnet DEPTH=56 exec bash "$(dirname "$0")/experiment.sh" "$@"
