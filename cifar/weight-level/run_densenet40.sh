#!/usr/bin/env bash
# Weight-level (unstructured) pruning of DenseNet-40 (k=12, basic layers; densenet_wl): baseline (160 epochs)
# -> prune --percent P -> fine-tune (40 epochs, lr 0.001), scratch-E, scratch-B, all with the mask enforced.
# Example: bash cifar/weight-level/run_densenet40.sh --dataset cifar10 --percent 0.3 -- --device cuda
PROG="$(basename "$0")" NAME=densenet40 ARCH=densenet_wl DEPTH=40 exec bash "$(dirname "$0")/experiment.sh" "$@"
