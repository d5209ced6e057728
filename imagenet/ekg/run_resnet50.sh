#!/usr/bin/env bash
# EKG on ImageNet ResNet-50 (or --depth 18/34/101/152): [baseline, 90 epochs] -> EKG's search to --keep-flops K
# (FLOPs kept, official counter; default 0.55, the poster's 45.0% fewer FLOPs) and the memory bank of 5 teachers ->
# fine-tune with the bank (two views + KD at T=10; 100 epochs, lr 0.01 x0.2 at 30/60/80, Nesterov, wd 1e-4, batch 256),
# fine-tune without it (--knowledge off: one view, CE), scratch-E (90 epochs, step 30) and scratch-B (cap rule).
# Usage: run_resnet50.sh --data DIR [--pretrained FILE] [--depth D] [--keep-flops K] [--save DIR] [--seeds "1 2"]
#                        [--dry-run] [-- flags]
#   --pretrained FILE: torchvision's resnetD weights (a bare state_dict, 1000 classes) or a checkpoint of ours: the
#   search starts from it and no baseline is trained; without it, the baseline is trained first.
#   Flags after "--" go to every training stage, e.g. -- --device cuda --amp --channels-last --loader fast
#   (several GPUs: run the training stages under torchrun, as the README shows; the search is one process).
# One experiment per seed in SAVE/seedS (default SAVE: logs/imagenet-ekg/resnetD-kK); finished stages are skipped,
# interrupted ones resume (the search too).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DEPTH=50; KEEP=0.55; SEEDS="1"; DATA=""; SAVE=""; PRETRAINED=""; EXTRA=()
method_option() {
  case "$1" in
    --data) need_value "$@"; DATA="$2"; TAKEN=2 ;;
    --pretrained) need_value "$@"; PRETRAINED="$2"; TAKEN=2 ;;
    --depth) need_value "$@"; DEPTH="$2"; TAKEN=2 ;;
    --keep-flops) need_value "$@"; KEEP="$2"; TAKEN=2 ;;
  esac
}
parse_options "$@"
check_choice --depth "$DEPTH" 18 34 50 101 152
[ -n "$DATA" ] || die "--data DIR (ImageNet's train/ and val/) is required"
check_fractions --keep-flops "$KEEP"
ROOT_SAVE="${SAVE:-logs/imagenet-ekg/resnet$DEPTH-k$KEEP}"

for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--data "$DATA" --seed "$SEED")
  if [ -n "$PRETRAINED" ]; then
    SOURCE=(--arch "resnet$DEPTH" --model "$PRETRAINED")
  else
    stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" --depth "$DEPTH"
    SOURCE=(--model "$SAVE/baseline/checkpoint.pth.tar")
  fi
  prune_once "$SAVE/pruned" "$HERE/prune.py" --data "$DATA" --keep-flops "$KEEP" "${SOURCE[@]}"
  PRUNED="$SAVE/pruned/pruned.pth.tar"
  stage "$SAVE/finetune" "$HERE/finetune.py" "${COMMON[@]}" --refine "$PRUNED" --knowledge on
  stage "$SAVE/finetune-ce" "$HERE/finetune.py" "${COMMON[@]}" --refine "$PRUNED" --knowledge off
  for B in E B; do
    stage "$SAVE/scratch-$B" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$PRUNED" --budget "$B"
  done
  echo "== results in $SAVE (summary.json per stage, prune.json)"
done
