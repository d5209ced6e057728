#!/usr/bin/env bash
# ThiNet on ResNet-56 (CIFAR): baseline (160 epochs) -> ThiNet prune of every block's first conv -> fine-tune
# (40 epochs, lr 0.001), scratch-E, scratch-B.
# Example: bash cifar/thinet/run_resnet56.sh --dataset cifar10 --percent 0.5 --save logs/thinet/resnet56 -- --device cuda
ARCH=resnet DEPTH=56 exec bash "$(dirname "$0")/experiment.sh" "$@"
