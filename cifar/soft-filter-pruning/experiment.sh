#!/usr/bin/env bash
# One whole Soft Filter Pruning experiment on the SFP CIFAR ResNet (reference.md 7.3):
# baseline (--rate 1) -> SFP (from the baseline's weights at lr 0.001, or --start scratch at lr 0.01)
# -> scratch-E and scratch-B with the SFP zeros as a fixed mask (the reference's pruning_resnet_scratch.py /
# pruning_resnet_longer_scratch.py), plus (beyond the reference) prune to the smaller network and fine-tune it.
# Run by run_resnet20.sh / run_resnet32.sh / run_resnet56.sh / run_resnet110.sh, which set DEPTH.
# Usage: run_X.sh [--dataset cifar10|cifar100] [--save DIR] [--data DIR] [--rate R] [--start pretrained|scratch]
#                 [--scratch-net masked|small] [--bug-b6] [--seeds "1 2 3"] [--dry-run] [-- extra flags]
# One experiment per seed in SAVE/seedS. Finished stages are skipped; interrupted ones resume. --dry-run prints
# the commands instead of running them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DATASET=cifar10; RATE=0.7; START=pretrained; NET=masked; B6=(); SEEDS="1"; DATA=(); SAVE=""; EXTRA=()
method_option() {
  case "$1" in
    --rate) need_value "$@"; RATE="$2"; TAKEN=2 ;;
    --start) need_value "$@"; START="$2"; TAKEN=2 ;;
    --scratch-net) need_value "$@"; NET="$2"; TAKEN=2 ;;
    --bug-b6) B6=(--bug-b6); TAKEN=1 ;;
  esac
}
parse_options "$@"
check_choice --start "$START" pretrained scratch
check_choice --scratch-net "$NET" masked small
ROOT_SAVE="${SAVE:-logs/sfp/$DATASET/resnet$DEPTH-rate$RATE-$START}"
ARCH=(--arch resnet_sfp --depth "$DEPTH")

# the SFP recipe (200 epochs, batch 128, Nesterov, wd 5e-4, --schedule 1 60 120 160 --gammas 10 0.2 0.2 0.2)
# is every script's default; lr 0.01 unless --pretrained (0.001)
for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--dataset "$DATASET" "${DATA[@]}" --seed "$SEED")
  stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" "${ARCH[@]}" --rate 1
  if [ "$START" = pretrained ]; then
    stage "$SAVE/sfp" "$HERE/train.py" "${COMMON[@]}" "${ARCH[@]}" --rate "$RATE" \
        --pretrained "$SAVE/baseline/checkpoint.pth.tar"
  else
    stage "$SAVE/sfp" "$HERE/train.py" "${COMMON[@]}" "${ARCH[@]}" --rate "$RATE"
  fi
  prune_once "$SAVE/pruned" "$HERE/prune.py" --dataset "$DATASET" "${DATA[@]}" --model "$SAVE/sfp/checkpoint.pth.tar"
  stage "$SAVE/finetune" "$HERE/finetune.py" "${COMMON[@]}" --refine "$SAVE/pruned/pruned.pth.tar"
  if [ "$NET" = masked ]; then
    SCRATCH=(--masked --scratch "$SAVE/sfp/checkpoint.pth.tar")
  else
    SCRATCH=(--scratch "$SAVE/pruned/pruned.pth.tar")
  fi
  stage "$SAVE/scratch-E" "$HERE/scratch.py" "${COMMON[@]}" "${SCRATCH[@]}" --budget E
  stage "$SAVE/scratch-B" "$HERE/scratch.py" "${COMMON[@]}" "${SCRATCH[@]}" --budget B "${B6[@]}"
  echo "== results in $SAVE (summary.json per stage, prune.json)"
done
