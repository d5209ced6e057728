# Shell helpers shared by the method folders' experiment.sh scripts: sourced, never run.
# Sets ROOT, PYTHON (the repository's .venv when there is one) and PROG; defines
#   run CMD...             run CMD, or only print it when DRY=1 (the scripts' --dry-run, or DRY=1 in the environment)
#   stage DIR SCRIPT ARGS  a training stage, skipped when DIR/summary.json exists, resumed when a checkpoint does;
#                          the caller's EXTRA array (flags after "--") goes to every stage
#   prune_once DIR ARGS    prune.py-style step, skipped when DIR/pruned.pth.tar exists
#   branches RUN           the paper's three runs off RUN/pruned/pruned.pth.tar with the caller's COMMON flags:
#                          fine-tune (40 epochs, lr 0.001), scratch-E and scratch-B (160 epochs, lr 0.1)
#   parse_options "$@"     the options every script shares (below); the script's own ones first go to its
#                          method_option function, when it defines one
#   need_value FLAG [V]    FLAG's value is there, or a one-line error
#   check_choice FLAG V C...   V is one of the choices C
#   check_seeds S...       whole numbers only
#   check_fractions FLAG P...  each P in (0, 1)
#   check_numbers FLAG X...    each X a non-negative number (1e-4 too)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3 )}"
PROG="${PROG:-$(basename "$0")}"
DRY="${DRY:-0}"

die() { echo "$PROG: error: $*" >&2; exit 2; }

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
    case "$s" in ''|*[!0-9]*) die "--seeds takes whole numbers, not '$s'" ;; esac
  done
}

check_fractions() {
  local flag="$1" p; shift
  for p in "$@"; do
    awk -v p="$p" 'BEGIN { exit !(p ~ /^[0-9]*\.?[0-9]+$/ && p > 0 && p < 1) }' || die "$flag $p: must lie in (0, 1)"
  done
}

check_numbers() {
  local flag="$1" x; shift
  for x in "$@"; do
    awk -v x="$x" 'BEGIN { exit !(x ~ /^[0-9]*\.?[0-9]+([eE]-?[0-9]+)?$/) }' || die "$flag $x: must be a non-negative number"
  done
}

need_value() {
  [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"
}

check_choice() {
  local flag="$1" value="$2" c; shift 2
  for c in "$@"; do [ "$value" = "$c" ] && return 0; done
  local last="${*: -1}" list
  list="$(printf '%s, ' "${@:1:$#-1}")"
  die "$flag must be ${list%, } or $last, not $value"
}

# The options every experiment script takes: --save, --data DIR, --seed(s), --dry-run, -h/--help (the script's
# opening comment), "--" (the rest go to every training stage, in EXTRA) and --dataset where the script sets
# DATASET before calling. The script's own options go first to its method_option function, which sets its
# variables and TAKEN, the number of words it used (left 0: not its option), so it may also take over a shared
# option (the ImageNet scripts' --data is a plain path). The seeds are checked at the end.
parse_options() {
  local own=0
  declare -F method_option >/dev/null && own=1
  while [ $# -gt 0 ]; do
    TAKEN=0
    if [ "$own" = 1 ]; then method_option "$@"; fi
    if [ "$TAKEN" -gt 0 ]; then shift "$TAKEN"; continue; fi
    case "$1" in
      --dataset) [ -n "${DATASET+set}" ] || die "unknown option $1 (see --help)"
                 need_value "$@"; DATASET="$2"; shift 2 ;;
      --save) need_value "$@"; SAVE="$2"; shift 2 ;;
      --data) need_value "$@"; DATA=(--data "$2"); shift 2 ;;
      --seed|--seeds) need_value "$@"; SEEDS="$2"; shift 2 ;;
      --dry-run) DRY=1; shift ;;
      --) shift; EXTRA=("$@"); break ;;
      -h|--help) awk 'NR > 1 { if (!/^#/) exit; print }' "$0"; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  check_seeds $SEEDS
}
