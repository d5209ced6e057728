#!/usr/bin/env bash
# One whole ImageNet weight-level experiment: prune torchvision's pretrained weights (--percent) -> fine-tune (10
# epochs, lr 0.001), scratch-E (90 epochs, lr 0.1, x0.1 every 30) and scratch-B (int(90 r) epochs, StepLR(int(E/3))).
# Run by run_vgg16_bn.sh / run_resnet50.sh (they set ARCH).
# Usage: run_X.sh --data DIR --pretrained FILE [--percent "0.3 0.6"] [--seeds "1 2"] [--save DIR]
#                 [--flops-ratio-one] [--dry-run] [-- extra flags]
#   --pretrained FILE: torchvision's state_dict (vgg16_bn-6c64b313.pth / resnet50-0676ba61.pth) or a checkpoint of ours.
#   --flops-ratio-one: scratch-B as the released main_B.py trains it (bug B3: ratio 1, i.e. 90 epochs, step 30).
# Per seed and ratio P: SAVE/seedS/pP/{pruned,finetune,scratch-E,scratch-B} (default SAVE: logs/imagenet-wl/ARCH).
# Flags after "--" go to every training stage, e.g. -- --device cuda --amp --channels-last --loader fast (several
# GPUs: run the stage scripts under torchrun). Finished stages are skipped; interrupted ones resume. --dry-run
# prints the commands instead of running them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

PERCENTS="0.3"; SEEDS="1"; DATA=""; SAVE=""; PRETRAINED=""; B3=(); EXTRA=()
method_option() {
  case "$1" in
    --data) need_value "$@"; DATA="$2"; TAKEN=2 ;;
    --pretrained) need_value "$@"; PRETRAINED="$2"; TAKEN=2 ;;
    --percent|--percents) need_value "$@"; PERCENTS="$2"; TAKEN=2 ;;
    --flops-ratio-one) B3=(--flops-ratio-one); TAKEN=1 ;;
  esac
}
parse_options "$@"
check_fractions --percent $PERCENTS
[ -n "$DATA" ] || die "--data DIR (ImageNet's train/ and val/) is required"
[ -n "$PRETRAINED" ] || die "--pretrained FILE (torchvision's $ARCH weights) is required"
ROOT_SAVE="${SAVE:-logs/imagenet-wl/$ARCH}"

for SEED in $SEEDS; do
  COMMON=(--data "$DATA" --seed "$SEED")
  for P in $PERCENTS; do
    RUN="$ROOT_SAVE/seed$SEED/p$P"
    pruned="$RUN/pruned/pruned.pth.tar"
    prune_once "$RUN/pruned" "$HERE/prune.py" --data "$DATA" --arch "$ARCH" --percent "$P" --model "$PRETRAINED"
    stage "$RUN/finetune" "$HERE/finetune.py" "${COMMON[@]}" --refine "$pruned" --epochs 10 --lr 0.001
    stage "$RUN/scratch-E" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$pruned" --budget E --epochs 90 --lr 0.1
    stage "$RUN/scratch-B" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$pruned" --budget B --epochs 90 --lr 0.1 \
      "${B3[@]}"
  done
done
