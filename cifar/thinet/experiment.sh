#!/usr/bin/env bash
# One whole ThiNet experiment: baseline -> prune (ThiNet, layer by layer, with the paper's short fine-tune after
# each layer) -> fine-tune (40 epochs, lr 0.001), scratch-E (160 epochs), scratch-B (160 x FLOPs ratio).
# Run by run_vgg16.sh / run_resnet56.sh, which set ARCH and DEPTH.
# Usage: run_X.sh [--dataset cifar10|cifar100] [--percent P] [--seeds "1 2 3"] [--save DIR] [--data DIR] [--dry-run]
#                 [-- extra flags]
# --percent: fraction of the channels removed from each pruned layer (default 0.5, ThiNet-50). Between layers,
# ThiNet fine-tunes about one epoch (782 SGD steps of batch 64 on CIFAR, lr 0.001). Extra flags after "--" go to
# every training stage. One experiment per seed in SAVE/seedS (default SAVE: logs/thinet/DATASET/MODEL-pP);
# finished stages are skipped, interrupted ones resume; --dry-run prints the commands instead of running them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DATASET=cifar10; PERCENT=0.5; SEEDS="1"; DATA=(); SAVE=""; EXTRA=()
method_option() {
  case "$1" in --percent) need_value "$@"; PERCENT="$2"; TAKEN=2 ;; esac
}
parse_options "$@"
check_choice --dataset "$DATASET" cifar10 cifar100
check_fractions --percent "$PERCENT"
ROOT_SAVE="${SAVE:-logs/thinet/$DATASET/${ARCH}${DEPTH}-p$PERCENT}"

for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--dataset "$DATASET" "${DATA[@]}" --seed "$SEED")
  stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" --arch "$ARCH" --depth "$DEPTH" --epochs 160 --lr 0.1
  prune_once "$SAVE/pruned" "$HERE/prune.py" --dataset "$DATASET" "${DATA[@]}" --percent "$PERCENT" \
      --seed "$SEED" --ft-between-iters 782 --ft-lr 0.001 --model "$SAVE/baseline/checkpoint.pth.tar"
  branches "$SAVE"
done
