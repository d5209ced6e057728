#!/usr/bin/env bash
# One whole Network Slimming experiment: baseline, sparsity training (-sr --s S) -> prune --percent P (global
# BN-scale threshold) -> fine-tune (40 epochs, lr 0.001), scratch-E (160 epochs), scratch-B (160 x FLOPs ratio).
# Run by run_vgg19.sh / run_preresnet164.sh / run_densenet40.sh (they set ARCH, DEPTH, S and the ratios).
# Usage: run_X.sh [cifar10|cifar100] [--dataset D] [--percent "P ..."] [--s S] [--seeds "1 2 3"] [--save DIR]
#                 [--data DIR] [--no-baseline] [--dry-run] [-- extra flags]
# Per seed: SAVE/seedS/{baseline,sparse} are shared by all ratios; each ratio P has SAVE/seedS/pP/{pruned,finetune,
# scratch-E,scratch-B} (default SAVE: logs/network-slimming/DATASET/NAME). The baseline (no sparsity) is only the
# "unpruned" accuracy of Table 4; pruning starts from the sparsity-trained model. Extra flags after "--" go to every
# training stage (e.g. -- --device cuda --amp). Finished stages are skipped, interrupted ones resume; --dry-run
# prints the commands instead of running them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DATASET=cifar10; PERCENTS=""; SEEDS="1"; DATA=(); SAVE=""; EXTRA=(); BASELINE=1
method_option() {
  case "$1" in
    cifar10|cifar100) DATASET="$1"; TAKEN=1 ;;
    --percent|--percents) need_value "$@"; PERCENTS="$2"; TAKEN=2 ;;
    --s) need_value "$@"; S="$2"; TAKEN=2 ;;
    --no-baseline) BASELINE=0; TAKEN=1 ;;
  esac
}
parse_options "$@"
check_choice --dataset "$DATASET" cifar10 cifar100
if [ "$DATASET" = cifar10 ]; then PERCENTS="${PERCENTS:-$PERCENTS_C10}"; else PERCENTS="${PERCENTS:-$PERCENTS_C100}"; fi
check_fractions --percent $PERCENTS
check_numbers --s $S
ROOT_SAVE="${SAVE:-logs/network-slimming/$DATASET/$NAME}"


for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--dataset "$DATASET" "${DATA[@]}" --seed "$SEED")
  MODEL=(--arch "$ARCH" --depth "$DEPTH")
  if [ "$BASELINE" = 1 ]; then
    stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" "${MODEL[@]}" --epochs 160 --lr 0.1
  fi
  stage "$SAVE/sparse" "$HERE/train.py" "${COMMON[@]}" "${MODEL[@]}" -sr --s "$S" --epochs 160 --lr 0.1
  for P in $PERCENTS; do
    RUN="$SAVE/p$P"
    prune_once "$RUN/pruned" "$HERE/prune.py" --dataset "$DATASET" "${DATA[@]}" --percent "$P" \
        --model "$SAVE/sparse/checkpoint.pth.tar"
    branches "$RUN"
  done
done
