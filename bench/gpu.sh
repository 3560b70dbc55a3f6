#!/usr/bin/env bash
# One prepared GPU check: the train, surrogate and search benchmarks on one H100/H200 in under 8 minutes.
#
#   bash bench/gpu.sh                          # on the GPU machine, from anywhere
#   BENCH_DEVICE=cpu BENCH_QUICK=1 bash bench/gpu.sh   # smoke the whole script on a CPU machine
#
# Installs nothing from the network. If polars/platformdirs are missing there, carry wheels in .whl/
# (see bench/README.md); they are installed with --no-index into /tmp/site. Results (JSON) and the log
# (gpu-log.txt) go to bench/results/, or, when $OUT is set (the device tool brings back at most 8 files),
# to a scratch folder that is packed into $OUT/gpu-results.tgz after every step, the log copied beside it.
# Every step has its own `timeout`, cut to what is left of the whole script's budget (BENCH_BUDGET, 540 s);
# a failed step does not stop the others; the summary lists each step's exit status.
#
# BENCH_ONLY=name,name runs only those steps (e.g. a follow-up on a short lease); BENCH_TRAIN_BATCHES,
# BENCH_TRAIN_SIZE, BENCH_TRAIN_STEPS and BENCH_COMPILE_BATCH narrow the training benchmark.
#
# Steps, in priority order (the later ones are skipped when the budget runs out):
#   0. pytest tests/test_gpu.py                 (CUDA agreement, gradient capture, CLI train->search->eval)
#   1. bench/train.py, tiny and small at batch 256/1024/4096   (examples/s, tokens/s, MFU; a profile of each)
#   2. paprec train synthetic tiny, atomic and subword side by side (30 s budgets; for agreement)
#   3. surrogate: synthetic tiny atomic, trained     (speedup + same_choice / not_worse)
#   4. surrogate: beauty small atomic, random init, 2048 users (speed at P5-small/Beauty size), again at 256 rows a pass
#   5. surrogate: beauty small subword, random init, 1024 users (speed: trie beam vs 20-beam generate)
#   6. search: beauty small atomic at 500, 5000, all users, one round (cost vs users, memory)
#   7. surrogate: synthetic tiny subword, trained (agreement); bench/train.py small with torch.compile
#   8. with several GPUs: bench/distributed.py over torchrun/NCCL
#   9. only with BENCH_ONLY=full-search: train P5-small on Beauty, then the complete `paprec search` (all users)
#  10. only with BENCH_ONLY=small-beauty: P5-small on Beauty, bf16, batch 4,096; MFU and test vs item-kNN (#18)
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DEVICE="${BENCH_DEVICE:-cuda}"
QUICK="${BENCH_QUICK:-0}"
PY="${PYTHON:-python3}"
if [ -n "${OUT:-}" ]; then RESULTS="${TMPDIR:-/tmp}/paprec-gpu-results"; else RESULTS="$REPO/bench/results"; fi
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
BUDGET_S="${BENCH_BUDGET:-540}"   # the whole script's wall-clock budget; a step never runs past it
DEADLINE=$((START + BUDGET_S))
step() {  # step NAME SECONDS COMMAND...   (the timeout is cut to what is left of the budget)
  local name="$1" limit="$2"; shift 2
  if [ -n "${BENCH_ONLY:-}" ] && [[ ",$BENCH_ONLY," != *",$name,"* ]]; then return; fi  # BENCH_ONLY=a,b,...
  if [ "$QUICK" = 1 ]; then limit=$((limit * 2)); fi  # a CPU smoke is slower per item, not bigger
  local left=$((DEADLINE - $(date +%s) - 5))
  if [ "$left" -lt 15 ]; then SUMMARY+=("$name skipped (budget spent)"); say "step $name: skipped, budget spent"; return; fi
  if [ "$limit" -gt "$left" ]; then limit=$left; fi
  say "step $name (timeout ${limit}s): $*"
  local t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  SUMMARY+=("$name rc=$rc $(($(date +%s) - t0))s")
  say "step $name: rc=$rc in $(($(date +%s) - t0))s"
  pack
}
pack() {  # under the device tool: everything so far into $OUT/gpu-results.tgz (atomically), the log beside it
  [ -n "${OUT:-}" ] || return 0
  tar czf "$OUT/.gpu-results.tgz" -C "$RESULTS" . && mv "$OUT/.gpu-results.tgz" "$OUT/gpu-results.tgz"
  cp "$LOG" "$OUT/gpu-log.txt"
}

Q=(); [ "$QUICK" = 1 ] && Q=(--quick)
COMMON=(--json --device "$DEVICE" --out "$RESULTS")
SIZE=small; [ "$QUICK" = 1 ] && SIZE=tiny

# 0. the CUDA tests (tests/test_gpu.py: CPU/GPU agreement, gradient capture, train -> search -> eval -> recommend)
if [ "$DEVICE" != cpu ]; then
  step gpu-tests 70 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py
fi

# 1. training throughput and MFU at several batch sizes
if [ "$QUICK" = 1 ]; then
  step train 60 "$PY" bench/train.py --quick --size tiny "${COMMON[@]}"
else
  TRAIN_ARGS=(--batch-sizes "${BENCH_TRAIN_BATCHES:-256,1024,4096}")
  [ -n "${BENCH_TRAIN_SIZE:-}" ] && TRAIN_ARGS+=(--size "$BENCH_TRAIN_SIZE")
  [ -n "${BENCH_TRAIN_STEPS:-}" ] && TRAIN_ARGS+=(--steps "$BENCH_TRAIN_STEPS")
  step train 120 "$PY" bench/train.py "${COMMON[@]}" "${TRAIN_ARGS[@]}" --profile
fi

# 2. trained tiny synthetic models (atomic and subword, side by side), so that choice agreement means something
BUDGET=30; [ "$QUICK" = 1 ] && BUDGET=10
train_tiny() {  # train_tiny IDS
  [ -f "$PAPREC_HOME/models/synthetic-tiny-$1/config.json" ] && return 0
  "$PY" -m paprec_cli train --dataset synthetic --size tiny --ids "$1" --time-budget "$BUDGET" --device "$DEVICE" \
    --quiet --json --home "$PAPREC_HOME" >"$RESULTS/train-tiny-$1.json"
}
export -f train_tiny; export PAPREC_HOME BUDGET DEVICE PY RESULTS
"$PY" -m paprec_cli data import synthetic --home "$PAPREC_HOME" -q >>"$LOG" 2>&1  # once, before two writers race
step train-tiny 80 bash -c 'train_tiny atomic & a=$!; train_tiny subword & s=$!; wait $a; ra=$?; wait $s; exit $((ra + $?))'

# 3-5. surrogate evaluator vs the 20-beam baseline (--max-seconds: no new step after that; >= 1 step)
if [ "$QUICK" = 1 ]; then
  step surrogate-agree 60 "$PY" bench/surrogate.py --quick "${COMMON[@]}" --model auto
  step surrogate-subword 70 "$PY" bench/surrogate.py --quick "${COMMON[@]}" --model random --ids subword
else
  step surrogate-agree 50 "$PY" bench/surrogate.py "${COMMON[@]}" --model auto --train-budget 20 --dataset synthetic \
    --size tiny --ids atomic --users 300 --candidates 5 --steps 10 --max-seconds 25
  # the search's CUDA default (2048 surrogate rows a pass) on 2048 users, then the same at 256 rows a pass
  step surrogate-atomic 55 "$PY" bench/surrogate.py "${COMMON[@]}" --model random --dataset "$BIG" \
    --size "$SIZE" --ids atomic --users 2048 --candidates 5 --steps 3 --max-seconds 20
  step surrogate-atomic-256 45 "$PY" bench/surrogate.py "${COMMON[@]}" --model random --dataset "$BIG" \
    --size "$SIZE" --ids atomic --users 2048 --candidates 5 --steps 2 --max-seconds 15 --batch-size 256 --tag batch256 --no-flops
  step surrogate-subword 65 "$PY" bench/surrogate.py "${COMMON[@]}" --model random --dataset "$BIG" \
    --size "$SIZE" --ids subword --users 1024 --candidates 5 --steps 2 --max-seconds 25
fi

# 6. end-to-end search cost vs validation users (one round: the full stopping rule does not fit 8 minutes)
if [ "$QUICK" = 1 ]; then
  step search 60 "$PY" bench/search.py --quick "${COMMON[@]}"
else
  step search 120 "$PY" bench/search.py "${COMMON[@]}" --dataset "$BIG" --size "$SIZE" \
    --val-users 500,5000,all --max-rounds 1 --max-seconds 100
  # 7. agreement for subword ids on the trained tiny model, then torch.compile's effect on training (if time is left)
  step surrogate-agree-subword 50 "$PY" bench/surrogate.py "${COMMON[@]}" --model auto --train-budget 20 --dataset synthetic \
    --size tiny --ids subword --users 200 --candidates 5 --steps 10 --max-seconds 25
  step train-compile 80 "$PY" bench/train.py "${COMMON[@]}" --size small --batch-sizes "${BENCH_COMPILE_BATCH:-1024}" \
    --compile --steps 30
fi

# 8. several GPUs: the same search and training work on 1 vs N processes (torchrun, NCCL), only when N > 1
GPUS=0
if [ "$DEVICE" != cpu ] && command -v nvidia-smi >/dev/null 2>&1; then GPUS=$(nvidia-smi -L | wc -l); fi
if [ "$GPUS" -gt 1 ]; then
  step distributed 120 "$PY" bench/distributed.py "${Q[@]}" "${COMMON[@]}" --processes "$GPUS"
else
  SUMMARY+=("distributed skipped ($GPUS GPU(s): the multi-GPU path needs 2 or more)")
fi

# 9. only when asked (BENCH_ONLY=full-search, about 10 minutes, nothing else fits beside it): the complete Beauty
#    search as a user runs it, a P5-small trained on Beauty for BENCH_FULL_TRAIN seconds, then `paprec search` over
#    every validation user to the stopping rule, cut at BENCH_FULL_SEARCH seconds (--time-budget stops cleanly)
full_search() {
  [ -d "$PAPREC_HOME/data/beauty" ] || "$PY" -m paprec_cli data import beauty --from "$PAPREC_SHARED_DATA/beauty" \
    --home "$PAPREC_HOME" -q || return 3
  local size="${BENCH_FULL_SIZE:-small}"
  [ -f "$PAPREC_HOME/models/beauty-$size-atomic/config.json" ] || "$PY" -m paprec_cli train --dataset beauty \
    --size "$size" --ids atomic --tasks sequential --time-budget "${BENCH_FULL_TRAIN:-150}" --device "$DEVICE" \
    --home "$PAPREC_HOME" --quiet --json >"$RESULTS/full-train-beauty-$size-atomic.json" || return 4
  "$PY" -m paprec_cli search --task sequential --dataset beauty --model "beauty-$size-atomic" \
    --time-budget "${BENCH_FULL_SEARCH:-360}" --device "$DEVICE" --home "$PAPREC_HOME" --quiet --json \
    >"$RESULTS/full-search-beauty-$size-atomic.json"
}
export -f full_search; export PAPREC_SHARED_DATA
if [ "$BIG" = beauty ] && [[ ",${BENCH_ONLY:-}," == *",full-search,"* ]]; then
  step full-search 590 bash -c full_search
fi

# 10. only when asked (BENCH_ONLY=small-beauty, about 10 minutes alone on a lease; issue #18): P5-small trained on
#     Beauty with bf16 (paprec's default on CUDA) and a batch that fills the card, Beauty's tiny recipe otherwise
#     (sequential only, 30 history items, seen bias, user-id dropout 0.5; docs/RECIPE-18.md, "Session 20"), then
#     bench/train_report.py: MFU of every epoch and test HR@10 / NDCG@10 next to popularity and item-kNN.
#     The batch and learning rate are starting points, not measured: BENCH_SMALL_BATCH (4096), BENCH_SMALL_LR
#     (3e-3), BENCH_SMALL_TRAIN (seconds of training, 420).
small_beauty() {
  [ -d "$PAPREC_HOME/data/beauty" ] || "$PY" -m paprec_cli data import beauty --from "$PAPREC_SHARED_DATA/beauty" \
    --home "$PAPREC_HOME" -q || return 3
  local size=small; [ "$QUICK" = 1 ] && size=tiny
  local name="beauty-$size-b${BENCH_SMALL_BATCH:-4096}"
  "$PY" -m paprec_cli train --dataset beauty --size "$size" --ids atomic --tasks sequential --name "$name" \
    --batch-size "${BENCH_SMALL_BATCH:-4096}" --lr "${BENCH_SMALL_LR:-3e-3}" --time-budget "${BENCH_SMALL_TRAIN:-420}" \
    --epochs 100 --patience 5 --val-users 2000 --dropout 0.1 -o history=30 -o seen_bias=1 -o user_dropout=0.5 \
    -o hint=0 -o word_item=0 -o item_next=0 -o item_words=0 -o history_hint=0 \
    --device "$DEVICE" --home "$PAPREC_HOME" --quiet --json >"$RESULTS/small-beauty-train.json" || return 4
  (cd bench && "$PY" train_report.py "$PAPREC_HOME/models/$name" --device "$DEVICE" --out "$RESULTS" --json) \
    >"$RESULTS/small-beauty-report.json"
}
export -f small_beauty; export QUICK
if [ "$BIG" = beauty ] && [[ ",${BENCH_ONLY:-}," == *",small-beauty,"* ]]; then
  step small-beauty 590 bash -c small_beauty
fi

say "done in $(($(date +%s) - START))s"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$LOG" >&2
ls -1 "$RESULTS" | tee -a "$LOG" >&2
pack
