#!/usr/bin/env bash
# Weight-level (unstructured) pruning of the reference's "DenseNet-100": 32 basic layers per block, transitions
# halving the channels (densenet_wl --depth 100 --compression-rate 2, 4.07M params; bug B10). With --bc the
# paper's DenseNet-BC-100 (k=12, bottleneck, compression 0.5; densenet_bc, 0.77M params) instead.
# Stages: baseline (160 epochs) -> prune --percent P -> fine-tune (40 epochs, lr 0.001), scratch-E, scratch-B.
# Example: bash cifar/weight-level/run_densenet100.sh --dataset cifar10 --percent 0.8 --bc -- --device cuda
ARGS=()
BC=0
EXTRA=0
for a in "$@"; do  # --bc is ours; everything else (and all after "--") goes to experiment.sh
  if [ "$EXTRA" = 0 ] && [ "$a" = "--bc" ]; then BC=1; else ARGS+=("$a"); fi
  [ "$a" = "--" ] && EXTRA=1
done
export PROG="$(basename "$0")"
if [ "$BC" = 1 ]; then
  NAME=densenet_bc100 ARCH=densenet_bc DEPTH=100 exec bash "$(dirname "$0")/experiment.sh" "${ARGS[@]}"
fi
NAME=densenet100 ARCH=densenet_wl DEPTH=100 MODEL_FLAGS="--compression-rate 2" \
  exec bash "$(dirname "$0")/experiment.sh" "${ARGS[@]}"
