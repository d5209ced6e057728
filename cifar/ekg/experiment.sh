#!/usr/bin/env bash
# One whole EKG experiment: baseline (160 epochs) -> EKG's search to --keep-flops K (FLOPs kept, official counter;
# the memory bank of 5 teachers) -> fine-tune with the memory bank (the official recipe: 100 epochs, lr 0.01 x0.2 at
# 30/60/80, Nesterov, wd 5e-4, batch 128, two views + KD at T=4), fine-tune without it (--knowledge off, one view, CE:
# the official README command), scratch-E (160 epochs) and scratch-B (160 x FLOPs ratio) of the architecture found.
# Run by run_resnet56.sh, which sets ARCH and DEPTH.
# Usage: run_X.sh [--dataset cifar10|cifar100|fashionmnist] [--keep-flops K] [--seeds "1 2 3"] [--save DIR] [--data DIR]
#                 [--quick] [--dry-run] [-- extra flags]
# One experiment per seed in SAVE/seedS (default SAVE: logs/ekg/DATASET/MODEL-kK); extra flags after "--" go to every
# training stage; finished stages are skipped, interrupted ones resume (the search too); --dry-run prints the commands.
# --quick: the same experiment at CPU scale on real Fashion-MNIST (tests/e2e.py's EKG): ResNet-20, 1,000 training /
# 500 test images, 3 epochs (fine-tunes 2, constant lr), keep 60% of FLOPs, 16 + 8 search images per class.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../utils/experiment_lib.sh"

DATASET=cifar10; KEEP=0.45; SEEDS="1"; DATA=(); SAVE=""; EXTRA=(); QUICK=0
method_option() {
  case "$1" in
    --keep-flops) need_value "$@"; KEEP="$2"; TAKEN=2 ;;
    --quick) QUICK=1; TAKEN=1 ;;
  esac
}
parse_options "$@"
EPOCHS=160; SCALE=(); SEARCH=(); FT=(); LR=(--lr 0.1)
if [ "$QUICK" = 1 ]; then
  DATASET=fashionmnist; DEPTH=20; KEEP=0.6; EPOCHS=3; FT=(--epochs 2 --schedule)
  SCALE=(--train-subset 1000 --test-subset 500 --no-progress)
  SEARCH=(--test-subset 500 --subset-per-class 16 --val-per-class 8 --search-batch-size 40 --bank-images 1000)
  ROOT_SAVE="${SAVE:-logs/ekg/fashionmnist-quick}"
fi
check_choice --dataset "$DATASET" cifar10 cifar100 fashionmnist
check_fractions --keep-flops "$KEEP"
ROOT_SAVE="${ROOT_SAVE:-${SAVE:-logs/ekg/$DATASET/${ARCH}${DEPTH}-k$KEEP}}"

for SEED in $SEEDS; do
  SAVE="$ROOT_SAVE/seed$SEED"
  COMMON=(--dataset "$DATASET" "${DATA[@]}" --seed "$SEED" "${SCALE[@]}")
  PRUNED="$SAVE/pruned/pruned.pth.tar"
  stage "$SAVE/baseline" "$HERE/train.py" "${COMMON[@]}" --arch "$ARCH" --depth "$DEPTH" --epochs "$EPOCHS" "${LR[@]}"
  prune_once "$SAVE/pruned" "$HERE/prune.py" --dataset "$DATASET" "${DATA[@]}" --keep-flops "$KEEP" "${SEARCH[@]}" \
      --model "$SAVE/baseline/checkpoint.pth.tar"
  stage "$SAVE/finetune" "$HERE/finetune.py" "${COMMON[@]}" --refine "$PRUNED" --knowledge on "${FT[@]}"
  stage "$SAVE/finetune-ce" "$HERE/finetune.py" "${COMMON[@]}" --refine "$PRUNED" --knowledge off "${FT[@]}"
  for B in E B; do
    stage "$SAVE/scratch-$B" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$PRUNED" --budget "$B" --epochs "$EPOCHS" \
        "${LR[@]}"
  done
  echo "== results in $SAVE (summary.json per stage, prune.json)"
done
