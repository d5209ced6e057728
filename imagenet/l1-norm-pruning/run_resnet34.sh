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
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --pretrained) PRETRAINED="$2"; shift 2 ;;
    --save) SAVE="$2"; shift 2 ;;
    -v) VARIANT="$2"; shift 2 ;;
    --seed|--seeds) SEEDS="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "$PROG: error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$VARIANT" in A|B) ;; *) echo "$PROG: error: -v must be A or B, not $VARIANT" >&2; exit 2 ;; esac
[ -n "$DATA" ] || { echo "$PROG: error: --data DIR (ImageNet's train/ and val/) is required" >&2; exit 2; }
[ -n "$PRETRAINED" ] || { echo "$PROG: error: --pretrained FILE (torchvision's resnet34 weights) is required" >&2; exit 2; }
ROOT_SAVE="${SAVE:-logs/imagenet-l1/resnet34-$VARIANT}"
check_seeds $SEEDS

for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--data "$DATA" --seed "$SEED")
  prune_once "$SAVE/pruned" "$HERE/prune.py" --data "$DATA" --arch resnet --depth 34 -v "$VARIANT" --model "$PRETRAINED"
  pruned="$SAVE/pruned/pruned.pth.tar"
  stage "$SAVE/finetune" "$HERE/finetune.py" "${COMMON[@]}" --refine "$pruned" --epochs 20 --lr 0.001
  stage "$SAVE/scratch-E" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$pruned" --budget E --epochs 90
  stage "$SAVE/scratch-B" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$pruned" --budget B --epochs 90
done
