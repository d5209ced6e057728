#!/usr/bin/env bash
# One whole L1-norm experiment: baseline -> prune -> fine-tune, scratch-E, scratch-B.
# Run by run_vgg16.sh / run_resnet56.sh / run_resnet110.sh, which set ARCH and DEPTH.
# Usage: run_X.sh [--dataset cifar10|cifar100] [--save DIR] [--data DIR] [-v A|B] [--seeds "1 2 3"] [--dry-run]
#                 [-- extra flags]
# Extra flags after "--" go to every training stage (e.g. -- --device cuda --amp --channels-last).
# One experiment per seed, in SAVE/seedS (default SAVE: logs/l1-norm/DATASET/MODEL). Finished stages
# (summary.json / pruned.pth.tar present) are skipped; interrupted ones resume. --dry-run prints the commands
# instead of running them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DATASET=cifar10; VARIANT=A; SEEDS="1"; DATA=(); SAVE=""; EXTRA=()
method_option() {
  case "$1" in -v) need_value "$@"; VARIANT="$2"; TAKEN=2 ;; esac
}
parse_options "$@"
check_choice -v "$VARIANT" A B
NAME="${ARCH}${DEPTH}"
[ "$ARCH" = vgg ] || NAME="${NAME}-${VARIANT}"
ROOT_SAVE="${SAVE:-logs/l1-norm/$DATASET/$NAME}"


for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--dataset "$DATASET" "${DATA[@]}" --seed "$SEED")
  stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" --arch "$ARCH" --depth "$DEPTH" --epochs 160 --lr 0.1
  prune_once "$SAVE/pruned" "$HERE/prune.py" --dataset "$DATASET" "${DATA[@]}" -v "$VARIANT" \
      --model "$SAVE/baseline/checkpoint.pth.tar"
  branches "$SAVE"
done
