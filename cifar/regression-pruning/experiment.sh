#!/usr/bin/env bash
# One whole regression-pruning experiment: baseline -> prune (LASSO channel selection + least-squares reconstruction,
# layer by layer, He et al. 2017) -> fine-tune (40 epochs, lr 0.001), scratch-E (160 epochs), scratch-B (160 x FLOPs
# ratio). Run by run_vgg16.sh / run_resnet56.sh, which set ARCH, DEPTH and the 2x default of --percent.
# Usage: run_X.sh [--dataset cifar10|cifar100] [--percent P | --widths FILE] [--seeds "1 2 3"] [--save DIR]
#                 [--data DIR] [--dry-run] [-- extra flags]
# --percent: fraction of the channels removed from each pruned layer (VGG-16: 0.33, ResNet-56: 0.5, both about 2x
# fewer FLOPs); --widths FILE: per-layer target widths instead. Extra flags after "--" go to every training stage.
# One experiment per seed in SAVE/seedS (default SAVE: logs/regression/DATASET/MODEL-pP); finished stages are
# skipped, interrupted ones resume; --dry-run prints the commands instead of running them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DATASET=cifar10; SEEDS="1"; DATA=(); SAVE=""; EXTRA=(); WIDTHS=""
method_option() {
  case "$1" in
    --percent) need_value "$@"; PERCENT="$2"; TAKEN=2 ;;
    --widths) need_value "$@"; WIDTHS="$2"; TAKEN=2 ;;
  esac
}
parse_options "$@"
check_choice --dataset "$DATASET" cifar10 cifar100
if [ -n "$WIDTHS" ]; then
  [ -f "$WIDTHS" ] || die "--widths $WIDTHS: no such file"
  TARGET=(--widths "$WIDTHS"); TAG="w$(basename "$WIDTHS" | sed 's/\.[^.]*$//')"
else
  check_fractions --percent "$PERCENT"
  TARGET=(--percent "$PERCENT"); TAG="p$PERCENT"
fi
ROOT_SAVE="${SAVE:-logs/regression/$DATASET/${ARCH}${DEPTH}-$TAG}"

for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--dataset "$DATASET" "${DATA[@]}" --seed "$SEED")
  stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" --arch "$ARCH" --depth "$DEPTH" --epochs 160 --lr 0.1
  prune_once "$SAVE/pruned" "$HERE/prune.py" --dataset "$DATASET" "${DATA[@]}" "${TARGET[@]}" --seed "$SEED" \
      --model "$SAVE/baseline/checkpoint.pth.tar"
  branches "$SAVE"
done
