#!/usr/bin/env bash
# Regression pruning on VGG-16 (CIFAR) at 2x: baseline (160 epochs) -> LASSO + least squares on conv1_1..conv4_3,
# a third of each layer's channels removed (--percent 0.33: 2.06x fewer FLOPs; conv5 untouched, as VGG-16-5x) ->
# fine-tune (40 epochs, lr 0.001), scratch-E, scratch-B.
# Example: bash cifar/regression-pruning/run_vgg16.sh --dataset cifar10 --save logs/regression/vgg16 -- --device cuda
PERCENT=0.33 ARCH=vgg DEPTH=16 exec bash "$(dirname "$0")/experiment.sh" "$@"
