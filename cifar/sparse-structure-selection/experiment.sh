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
while [ $# -gt 0 ]; do
  case "$1" in
    cifar10|cifar100) DATASET="$1"; shift ;;
    --dataset) DATASET="${2:?}"; shift 2 ;;
    --gamma|--gammas) GAMMAS="${2:?}"; shift 2 ;;
    --seed|--seeds) SEEDS="${2:?}"; shift 2 ;;
    --save) SAVE="${2:?}"; shift 2 ;;
    --data) DATA=(--data "${2:?}"); shift 2 ;;
    --no-baseline) BASELINE=0; shift ;;
    --dry-run) DRY=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$HERE/experiment.sh"; exit 0 ;;
    *) echo "$PROG: error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DATASET" in
  cifar10|cifar100) ;;
  *) echo "$PROG: error: --dataset must be cifar10 or cifar100, not $DATASET" >&2; exit 2 ;;
esac
for G in $GAMMAS; do
  if ! awk -v g="$G" 'BEGIN { exit !(g ~ /^[0-9]*\.?[0-9]+([eE]-?[0-9]+)?$/) }'; then
    echo "$PROG: error: --gammas $G: must be a non-negative number" >&2; exit 2
  fi
done
check_seeds $SEEDS
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
