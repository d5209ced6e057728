#!/usr/bin/env bash
# Sparse Structure Selection of ResNet-56 (basic blocks, 27 of them): baseline, sparsity training per gamma (160
# epochs) -> remove the blocks whose lambda is 0 -> fine-tune, scratch-E, scratch-B.
# Example: bash cifar/sparse-structure-selection/run_resnet56.sh cifar100 --seeds "1 2 3" -- --device cuda --amp
PROG="$(basename "$0")" NAME=resnet56 ARCH=resnet DEPTH=56 GAMMAS="${GAMMAS:-0.01}" \
  exec bash "$(dirname "$0")/experiment.sh" "$@"
