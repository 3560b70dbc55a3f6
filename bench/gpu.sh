#!/usr/bin/env bash
# One prepared GPU check: the train, surrogate and search benchmarks on one H100/H200 in under 8 minutes.
#
#   bash bench/gpu.sh                          # on the GPU machine, from anywhere
#   BENCH_DEVICE=cpu BENCH_QUICK=1 bash bench/gpu.sh   # smoke the whole script on a CPU machine
#
# Installs nothing from the network. If polars/platformdirs are missing there, carry wheels in .whl/
# (see bench/README.md); they are installed with --no-index into /tmp/site. Results (JSON) go to $OUT
# when set, else bench/results/; the log goes next to them as gpu-log.txt. Every step has its own
# `timeout` and a failed step does not stop the others; the summary lists each step's exit status.
#
# Steps (GPU budget in seconds, sum < 480):
#   1. bench/train.py                                     (examples/s, tokens/s, MFU)        100
#   2. train synthetic-tiny-atomic for the agreement check (paprec train --time-budget 30)  60
#   3. surrogate: synthetic tiny atomic, trained model     (speedup + same/not-worse)       50
#   4. surrogate: beauty small atomic, random init          (speed at P5-small/Beauty size)  75
#   5. surrogate: beauty small subword, random init         (speed, trie beam vs generate)   75
#   6. search: beauty tiny atomic at 500,5000,all users, 1 round (cost vs users, memory)   110
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DEVICE="${BENCH_DEVICE:-cuda}"
QUICK="${BENCH_QUICK:-0}"
PY="${PYTHON:-python3}"
RESULTS="${OUT:-$REPO/bench/results}"
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu-log.txt"
: >"$LOG"
export PYTHONUNBUFFERED=1
export PAPREC_BENCH_OUT="$RESULTS"
export TOKENIZERS_PARALLELISM=false
export TMPDIR="${TMPDIR:-/tmp}"
export PAPREC_HOME="${PAPREC_HOME:-$TMPDIR/paprec-bench-home}"  # never the user's real home
START=$(date +%s)

say() { echo "[gpu.sh +$(($(date +%s) - START))s] $*" | tee -a "$LOG" >&2; }

# -- offline dependencies ------------------------------------------------------------------------------
if compgen -G "$REPO/.whl/*.whl" >/dev/null; then
  say "installing carried wheels from .whl/ into /tmp/site (no index)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$REPO"/.whl/*.whl >>"$LOG" 2>&1 || say "WARNING: wheel install failed (see log)"
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
# The source tree runs without `pip install -e` (built-in plugins load from plugins/ directly).
export PYTHONPATH="$REPO:$REPO/plugins:${PYTHONPATH:-}"

if ! "$PY" - <<'EOF' >>"$LOG" 2>&1; then
import importlib, sys
missing = []
for name in ("torch", "numpy", "polars", "transformers", "tokenizers", "safetensors", "pluggy", "platformdirs", "typer"):
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
if missing:
    print("missing Python packages: " + ", ".join(missing) + "; carry wheels in .whl/ (bench/README.md)")
    sys.exit(1)
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
  say "dependency check failed:"; tail -3 "$LOG" >&2; exit 2
fi
say "$(tail -1 "$LOG")"
if [ "$DEVICE" != "cpu" ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1; fi

# -- data: beauty from $PAPREC_SHARED_DATA, shared/data in the repo, or ../shared/data; else synthetic --
BIG=synthetic
for dir in "${PAPREC_SHARED_DATA:-}" "$REPO/shared/data" "$REPO/../shared/data"; do
  if [ -n "$dir" ] && [ -f "$dir/beauty/sequential_data.txt" ]; then
    export PAPREC_SHARED_DATA="$dir"; BIG=beauty; break
  fi
done
say "device $DEVICE, quick=$QUICK, results in $RESULTS, large dataset: $BIG"

declare -a SUMMARY=()
step() {  # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"; shift 2
  if [ "$QUICK" = 1 ]; then limit=$((limit * 2)); fi  # a CPU smoke is slower per item, not bigger
  say "step $name (timeout ${limit}s): $*"
  local t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  SUMMARY+=("$name rc=$rc $(($(date +%s) - t0))s")
  say "step $name: rc=$rc in $(($(date +%s) - t0))s"
}

Q=(); [ "$QUICK" = 1 ] && Q=(--quick)
COMMON=(--json --device "$DEVICE" --out "$RESULTS")

# 1. training throughput (bench/train.py belongs to the training work; skipped when absent)
if [ -f bench/train.py ]; then
  step train 100 "$PY" bench/train.py "${Q[@]}" "${COMMON[@]}"
else
  SUMMARY+=("train skipped (bench/train.py absent)"); say "bench/train.py absent: skipping"
fi

# 2. a trained tiny model, so that choice agreement means something (reused if already there)
if [ ! -f "$PAPREC_HOME/models/synthetic-tiny-atomic/config.json" ]; then
  BUDGET=30; [ "$QUICK" = 1 ] && BUDGET=10
  step train-tiny 60 "$PY" -m paprec_cli train --dataset synthetic --size tiny --ids atomic \
    --time-budget "$BUDGET" --device "$DEVICE" --quiet --home "$PAPREC_HOME"
fi

# 3-5. surrogate evaluator vs the 20-beam baseline (--max-seconds: no new step after that; >= 1 step)
if [ "$QUICK" = 1 ]; then
  step surrogate-agree 60 "$PY" bench/surrogate.py --quick "${COMMON[@]}" --model auto
  step surrogate-subword 70 "$PY" bench/surrogate.py --quick "${COMMON[@]}" --model random --ids subword
else
  step surrogate-agree 50 "$PY" bench/surrogate.py "${COMMON[@]}" --model auto --dataset synthetic \
    --size tiny --ids atomic --users 300 --candidates 5 --steps 10 --max-seconds 30
  step surrogate-atomic 75 "$PY" bench/surrogate.py "${COMMON[@]}" --model random --dataset "$BIG" \
    --size small --ids atomic --users 96 --candidates 5 --steps 3 --max-seconds 25
  step surrogate-subword 75 "$PY" bench/surrogate.py "${COMMON[@]}" --model random --dataset "$BIG" \
    --size small --ids subword --users 256 --candidates 5 --steps 3 --max-seconds 30
fi

# 6. end-to-end search cost vs validation users (one round: the full stopping rule does not fit 8 minutes)
if [ "$QUICK" = 1 ]; then
  step search 60 "$PY" bench/search.py --quick "${COMMON[@]}"
else
  step search 110 "$PY" bench/search.py "${COMMON[@]}" --dataset "$BIG" --val-users 500,5000,all \
    --max-rounds 1 --batch-size 1024 --max-seconds 95
fi

# 7. several GPUs: the same search and training work on 1 vs N processes (torchrun, NCCL), only when N > 1
GPUS=0
if [ "$DEVICE" != cpu ] && command -v nvidia-smi >/dev/null 2>&1; then GPUS=$(nvidia-smi -L | wc -l); fi
if [ "$GPUS" -gt 1 ]; then
  step distributed 120 "$PY" bench/distributed.py "${Q[@]}" "${COMMON[@]}" --processes "$GPUS"
else
  SUMMARY+=("distributed skipped ($GPUS GPU(s): the multi-GPU path needs 2 or more)")
fi

say "done in $(($(date +%s) - START))s"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$LOG" >&2
ls -1 "$RESULTS" | tee -a "$LOG" >&2
