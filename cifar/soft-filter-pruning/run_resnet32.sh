#!/usr/bin/env bash
# Soft Filter Pruning of ResNet-32 (He et al. 2018) as the Rethinking paper's SFP comparison: baseline (200 epochs)
# -> SFP at --rate (kept fraction, default 0.7) -> scratch-E / scratch-B with the SFP mask; prune + fine-tune too.
# Example: bash cifar/soft-filter-pruning/run_resnet32.sh --dataset cifar10 --rate 0.7 --save logs/sfp/r32 -- --device cuda
DEPTH=32 exec bash "$(dirname "$0")/experiment.sh" "$@"
