#!/usr/bin/env bash
# ThiNet on VGG-16 (CIFAR): baseline (160 epochs) -> ThiNet prune of conv1_1..conv4_3 (the paper's rule; conv5
# untouched) -> fine-tune (40 epochs, lr 0.001), scratch-E, scratch-B.
# Example: bash cifar/thinet/run_vgg16.sh --dataset cifar10 --percent 0.5 --save logs/thinet/vgg16 -- --device cuda
ARCH=vgg DEPTH=16 exec bash "$(dirname "$0")/experiment.sh" "$@"
