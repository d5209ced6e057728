#!/usr/bin/env bash
# Network Slimming of VGG-19 (Liu et al. 2017; the paper's Table 4): baseline and sparsity training (s = 1e-4,
# 160 epochs) -> prune 70% of the BN channels (CIFAR-10; 50% on CIFAR-100, as in Table 4) -> fine-tune
# (40 epochs, lr 0.001), scratch-E, scratch-B.
# Example: bash cifar/network-slimming/run_vgg19.sh cifar10 --seeds "1 2 3 4 5" -- --device cuda
PROG="$(basename "$0")" NAME=vgg19 ARCH=vgg DEPTH=19 S="${S:-0.0001}" PERCENTS_C10=0.7 PERCENTS_C100=0.5 \
  exec bash "$(dirname "$0")/experiment.sh" "$@"
