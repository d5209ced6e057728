#!/usr/bin/env bash
# One lottery-ticket experiment of the paper: winning ticket vs random init at each initial LR, by iterate.py.
# Run by weight-level/run_*.sh and l1-norm-pruning/run_*.sh, which set METHOD, ARCH and DEPTH.
# Usage: run_X.sh [--dataset cifar10|cifar100] [--save DIR] [--data DIR] [--lrs "0.1 0.01"] [--seeds "1 2 3"]
#                 [--rounds N] [--percent P] [--schedule iterative|oneshot] [-v "A B"] [--prune large|small|random]
#                 [--dry-run] [-- extra flags]
# Extra flags after "--" go to every training stage (e.g. -- --device cuda --amp --channels-last).
# One sweep per LR, seed (and L1 variant) in SAVE/lrLR/seedS[/V] (default SAVE: logs/lottery/METHOD/DATASET/MODEL);
# the L1 variants of a seed share one dense run (SAVE/lrLR/seedS/dense). Rerunning resumes where it stopped.
# --dry-run prints the commands instead of running them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../utils/experiment_lib.sh"

DATASET=cifar10; LRS="0.1 0.01"; SEEDS="1"; DATA=(); SAVE=""; EXTRA=(); ROUNDS=5; PERCENT=0.2
SCHEDULE=iterative; PRUNE=large; VARIANTS="${VARIANTS:-A}"
method_option() {
  case "$1" in
    --lr|--lrs) need_value "$@"; LRS="$2"; TAKEN=2 ;;
    --rounds) need_value "$@"; ROUNDS="$2"; TAKEN=2 ;;
    --percent) need_value "$@"; PERCENT="$2"; TAKEN=2 ;;
    --schedule) need_value "$@"; SCHEDULE="$2"; TAKEN=2 ;;
    -v) need_value "$@"; VARIANTS="$2"; TAKEN=2 ;;
    --prune) need_value "$@"; PRUNE="$2"; TAKEN=2 ;;
  esac
}
parse_options "$@"
for V in $VARIANTS; do
  case "$V" in A|B) ;; *) die "-v takes A and/or B, not '$V'" ;; esac
done
ROOT_SAVE="${SAVE:-logs/lottery/$METHOD/$DATASET/${ARCH}${DEPTH}}"
COMMON=(--method "$METHOD" --arch "$ARCH" --depth "$DEPTH" --dataset "$DATASET" "${DATA[@]}")

for LR in $LRS; do
  for SEED in $SEEDS; do
    DIR="$ROOT_SAVE/lr$LR/seed$SEED"
    if [ "$METHOD" = weight-level ]; then
      echo "=== $DIR"
      run "$PYTHON" "$HERE/iterate.py" "${COMMON[@]}" --lr "$LR" --seed "$SEED" --rounds "$ROUNDS" --percent "$PERCENT" \
          --schedule "$SCHEDULE" --save "$DIR" -- "${EXTRA[@]}"
    else
      for V in $VARIANTS; do
        echo "=== $DIR/$V"
        run "$PYTHON" "$HERE/iterate.py" "${COMMON[@]}" --lr "$LR" --seed "$SEED" --rounds 1 -v "$V" --prune "$PRUNE" \
            --dense "$DIR/dense" --save "$DIR/$V" -- "${EXTRA[@]}"
      done
    fi
  done
done
echo "=== results: RESULTS.md and results.json in every sweep folder under $ROOT_SAVE"
