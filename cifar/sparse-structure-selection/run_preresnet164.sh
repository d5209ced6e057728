#!/usr/bin/env bash
# Sparse Structure Selection of the pre-activation ResNet-164 (bottleneck blocks, 54 of them): baseline, sparsity
# training per gamma (160 epochs) -> remove the blocks whose lambda is 0 -> fine-tune, scratch-E, scratch-B.
# Example: bash cifar/sparse-structure-selection/run_preresnet164.sh cifar10 --gammas "0.005 0.01" -- --device cuda
PROG="$(basename "$0")" NAME=preresnet164 ARCH=preresnet DEPTH=164 GAMMAS="${GAMMAS:-0.01}" \
  exec bash "$(dirname "$0")/experiment.sh" "$@"
