#!/usr/bin/env bash
# L1-norm filter pruning of ImageNet ResNet-34 (Li et al. 2017; the paper's Table 2 rows ResNet-34-A/B):
# prune torchvision's pretrained ResNet-34 (-v A|B) -> fine-tune (20 epochs, lr 0.001), scratch-E (90 epochs, step
# 30), scratch-B (cap rule: 106 epochs / step 35 for A, 118 / 39 for B).
# Usage: run_resnet34.sh --data DIR --pretrained FILE [-v A|B] [--save DIR] [--seeds "1 2"] [--dry-run] [-- flags]
#   --pretrained FILE: torchvision's resnet34-333f7ec4.pth (a bare state_dict) or any ResNet-34 checkpoint of ours.
#   Flags after "--" go to every training stage, e.g. -- --device cuda --amp --channels-last --loader fast
#   (several GPUs: run the stage scripts under torchrun, as the README shows).
# One experiment per seed in SAVE/seedS (default SAVE: logs/imagenet-l1/resnet34-V); finished stages are skipped,
# interrupted ones resume.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

VARIANT=A; SEEDS="1"; DATA=""; SAVE=""; PRETRAINED=""; EXTRA=()
method_option() {
  case "$1" in
    --data) need_value "$@"; DATA="$2"; TAKEN=2 ;;
    --pretrained) need_value "$@"; PRETRAINED="$2"; TAKEN=2 ;;
    -v) need_value "$@"; VARIANT="$2"; TAKEN=2 ;;
  esac
}
parse_options "$@"
check_choice -v "$VARIANT" A B
[ -n "$DATA" ] || die "--data DIR (ImageNet's train/ and val/) is required"
[ -n "$PRETRAINED" ] || die "--pretrained FILE (torchvision's resnet34 weights) is required"
ROOT_SAVE="${SAVE:-logs/imagenet-l1/resnet34-$VARIANT}"

for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--data "$DATA" --seed "$SEED")
  prune_once "$SAVE/pruned" "$HERE/prune.py" --data "$DATA" --arch resnet --depth 34 -v "$VARIANT" --model "$PRETRAINED"
  pruned="$SAVE/pruned/pruned.pth.tar"
  stage "$SAVE/finetune" "$HERE/finetune.py" "${COMMON[@]}" --refine "$pruned" --epochs 20 --lr 0.001
  stage "$SAVE/scratch-E" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$pruned" --budget E --epochs 90
  stage "$SAVE/scratch-B" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$pruned" --budget B --epochs 90
done
