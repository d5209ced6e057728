#!/usr/bin/env bash
# One whole Sparse Structure Selection experiment: baseline (no block lambdas), and per gamma G sparsity training
# (block lambdas, APG-NAG, --sss-gamma G) -> prune (blocks whose lambda is 0) -> fine-tune (40 epochs, lr 0.001),
# scratch-E (160 epochs), scratch-B (160 x FLOPs ratio). Run by run_preresnet164.sh / run_resnet56.sh (they set
# ARCH, DEPTH and the gammas).
# Usage: run_X.sh [cifar10|cifar100] [--dataset D] [--gammas "G ..."] [--seeds "1 2 3"] [--save DIR] [--data DIR]
#                 [--no-baseline] [--dry-run] [-- extra flags]
# Per seed: SAVE/seedS/baseline (the "unpruned" accuracy), and per gamma SAVE/seedS/gammaG/{sparse,pruned,finetune,
# scratch-E,scratch-B} (default SAVE: logs/sss/DATASET/NAME). Extra flags after "--" go to every training stage
# (e.g. -- --device cuda --amp). Finished stages are skipped, interrupted ones resume; --dry-run prints the commands.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DATASET=cifar10; SEEDS="1"; DATA=(); SAVE=""; EXTRA=(); BASELINE=1
method_option() {
  case "$1" in
    cifar10|cifar100) DATASET="$1"; TAKEN=1 ;;
    --gamma|--gammas) need_value "$@"; GAMMAS="$2"; TAKEN=2 ;;
    --no-baseline) BASELINE=0; TAKEN=1 ;;
  esac
}
parse_options "$@"
check_choice --dataset "$DATASET" cifar10 cifar100
check_numbers --gammas $GAMMAS
ROOT_SAVE="${SAVE:-logs/sss/$DATASET/$NAME}"

for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--dataset "$DATASET" "${DATA[@]}" --seed "$SEED")
  MODEL=(--arch "$ARCH" --depth "$DEPTH")
  if [ "$BASELINE" = 1 ]; then
    stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" "${MODEL[@]}" --no-block-lambda --epochs 160 --lr 0.1
  fi
  for G in $GAMMAS; do
    RUN="$SAVE/gamma$G"
    stage "$RUN/sparse" "$HERE/train.py" "${COMMON[@]}" "${MODEL[@]}" --block-lambda --sss-gamma "$G" \
        --epochs 160 --lr 0.1
    prune_once "$RUN/pruned" "$HERE/prune.py" --dataset "$DATASET" "${DATA[@]}" --model "$RUN/sparse/checkpoint.pth.tar"
    branches "$RUN"
  done
done
