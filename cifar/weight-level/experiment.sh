#!/usr/bin/env bash
# One whole weight-level experiment: baseline -> prune (--percent) -> fine-tune, scratch-E, scratch-B.
# Run by run_vgg19.sh / run_preresnet110.sh / run_densenet40.sh / run_densenet100.sh (they set ARCH, DEPTH).
# Usage: run_X.sh [--dataset cifar10|cifar100] [--percent "0.3 0.8"] [--seeds "1 2 3"] [--save DIR] [--data DIR]
#                 [--dry-run] [-- extra flags]
# Per seed, SAVE/seedS/baseline is shared by all ratios; each ratio P has SAVE/seedS/pP/{pruned,finetune,scratch-E,
# scratch-B} (default SAVE: logs/weight-level/DATASET/MODEL). Extra flags after "--" go to every training stage
# (e.g. -- --device cuda --amp --channels-last). Finished stages (summary.json / pruned.pth.tar present) are
# skipped; interrupted ones resume. --dry-run prints the commands instead of running them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DATASET=cifar10; PERCENTS="0.3"; SEEDS="1"; DATA=(); SAVE=""; EXTRA=()
method_option() {
  case "$1" in --percent|--percents) need_value "$@"; PERCENTS="$2"; TAKEN=2 ;; esac
}
parse_options "$@"
check_choice --dataset "$DATASET" cifar10 cifar100
check_fractions --percent $PERCENTS
ROOT_SAVE="${SAVE:-logs/weight-level/$DATASET/$NAME}"


for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--dataset "$DATASET" "${DATA[@]}" --seed "$SEED")
  # shellcheck disable=SC2086  # MODEL_FLAGS holds several words on purpose
  stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" --arch "$ARCH" --depth "$DEPTH" ${MODEL_FLAGS:-} \
    --epochs 160 --lr 0.1
  for P in $PERCENTS; do
    RUN="$SAVE/p$P"
    prune_once "$RUN/pruned" "$HERE/prune.py" --dataset "$DATASET" "${DATA[@]}" --percent "$P" \
        --model "$SAVE/baseline/checkpoint.pth.tar"
    branches "$RUN"
  done
done
