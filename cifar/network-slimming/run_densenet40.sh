#!/usr/bin/env bash
# Network Slimming of DenseNet-40 (growth 12; Liu et al. 2017; the paper's Table 4): baseline and sparsity
# training (s = 1e-5, 160 epochs) -> prune 40% and 60% of the BN channels -> fine-tune (40 epochs, lr 0.001),
# scratch-E, scratch-B (each ratio from the same sparse model).
# Example: bash cifar/network-slimming/run_densenet40.sh cifar10 --seeds "1 2 3 4 5" -- --device cuda
PROG="$(basename "$0")" NAME=densenet40 ARCH=densenet DEPTH=40 S="${S:-0.00001}" PERCENTS_C10="0.4 0.6" \
  PERCENTS_C100="0.4 0.6" exec bash "$(dirname "$0")/experiment.sh" "$@"
