# Shell helpers shared by the method folders' experiment.sh scripts: sourced, never run.
# Sets ROOT, PYTHON (the repository's .venv when there is one) and PROG; defines
#   run CMD...             run CMD, or only print it when DRY=1 (the scripts' --dry-run, or DRY=1 in the environment)
#   stage DIR SCRIPT ARGS  a training stage, skipped when DIR/summary.json exists, resumed when a checkpoint does;
#                          the caller's EXTRA array (flags after "--") goes to every stage
#   prune_once DIR ARGS    prune.py-style step, skipped when DIR/pruned.pth.tar exists
#   branches RUN           the paper's three runs off RUN/pruned/pruned.pth.tar with the caller's COMMON flags:
#                          fine-tune (40 epochs, lr 0.001), scratch-E and scratch-B (160 epochs, lr 0.1)
#   check_seeds S...       whole numbers only
#   check_fractions FLAG P...  each P in (0, 1)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3 )}"
PROG="${PROG:-$(basename "$0")}"
DRY="${DRY:-0}"

run() { if [ "$DRY" = 1 ]; then echo "$*"; else "$@"; fi; }

stage() {
  local dir="$1"; shift
  if [ -f "$dir/summary.json" ]; then echo "== $dir: done, skipped"; return; fi
  local resume=()
  [ -f "$dir/checkpoint.pth.tar" ] && resume=(--resume auto)
  echo "== $dir"
  run "$PYTHON" "$@" --save "$dir" "${resume[@]}" "${EXTRA[@]}"
}

prune_once() {
  local dir="$1"; shift
  if [ -f "$dir/pruned.pth.tar" ]; then echo "== $dir: done, skipped"; return; fi
  echo "== $dir"
  run "$PYTHON" "$@" --save "$dir"
}

branches() {
  local run="$1" pruned="$1/pruned/pruned.pth.tar"
  stage "$run/finetune" "$HERE/finetune.py" "${COMMON[@]}" --refine "$pruned" --epochs 40 --lr 0.001
  stage "$run/scratch-E" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$pruned" --budget E --epochs 160 --lr 0.1
  stage "$run/scratch-B" "$HERE/scratch.py" "${COMMON[@]}" --scratch "$pruned" --budget B --epochs 160 --lr 0.1
  echo "== results in $run (summary.json per stage, prune.json)"
}

check_seeds() {
  local s
  for s in "$@"; do
    case "$s" in ''|*[!0-9]*) echo "$PROG: error: --seeds takes whole numbers, not '$s'" >&2; exit 2 ;; esac
  done
}

check_fractions() {
  local flag="$1" p; shift
  for p in "$@"; do
    if ! awk -v p="$p" 'BEGIN { exit !(p ~ /^[0-9]*\.?[0-9]+$/ && p > 0 && p < 1) }'; then
      echo "$PROG: error: $flag $p: must lie in (0, 1)" >&2; exit 2
    fi
  done
}
