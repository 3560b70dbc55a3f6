"""End-to-end PAP-REC search time at several validation sizes: how cost grows with users, and peak memory.

What is measured, and how:
- For each size in `--val-users` (e.g. `500,5000,all`; sizes above the dataset's validation users collapse
  to `all`), a fresh child process runs the search core exactly as `paprec search` does
  (`runner.prepare` -> `runner.search` with a run directory), so each size's peak memory is its own.
- `prepare_s`: loading the dataset and model, building examples, sampling users; `search_s`: the schedule
  (gradients, candidates, surrogate evaluation of every step, run-directory writes) until its stopping
  rule or `--max-rounds`; `finalize_s` (with `--finalize`): manual/shared/personalized evaluation on
  validation and test, as `paprec search` ends. Seconds per user = search_s / users, seconds per step.
- Growth exponent: the least-squares slope of log(search_s) on log(users) (1.0 = linear); also for
  seconds per step, since a search may take a different number of steps at different sizes.
- Peak memory: the child's max RSS (`resource.getrusage`) and, on CUDA, `torch.cuda.max_memory_allocated`.
- Model: `--model auto` uses `<home>/models/<dataset>-<size>-<ids>` if present (or the benchmark's scratch
  home), else a randomly initialised model of `--size` saved once into the scratch home (fine for cost,
  not for prompt quality: say so in reports). Every cap (`--max-rounds`, sizes) is recorded in the JSON.

Seconds per round (`--per-round`): one search per `--points` entry (default `synthetic:600,beauty:5000`:
600 synthetic and 5,000 Beauty validation users), each in its own child process with its own dataset and
model, reported in one table and one JSON (`search-rounds-<machine>.json`): `round_s` is the wall time of
each round, summed from the run's `trajectory.jsonl` steps (gradients, candidates, surrogate evaluation;
not `prepare_s`), and `s_per_round` their mean. Its result goes to a fresh temporary folder unless `--out`
(or `$PAPREC_BENCH_OUT`) is given, so before/after comparisons do not overwrite `bench/results/`.

Usage: python bench/search.py [--quick] [--json] [--dataset synthetic|beauty] [--val-users 500,5000,all]
       [--max-rounds R] [--top-k K] [--evaluator fast|beam] [--protocol history|paper|transfer] [--device cpu|cuda]
       python bench/search.py --per-round [--points synthetic:600,beauty:5000] [--max-rounds R] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import (
    OUT_ENV,
    SCRATCH_HOME,
    add_common_args,
    document,
    emit_json,
    ensure_dataset,
    find_model,
    fit_exponent,
    open_home,
    peak_memory,
    print_table,
    random_model,
    reset_peak_memory,
    resolve_device,
    say,
    stopwatch,
    write_result,
)


# -- one size, in a child process ---------------------------------------------------------------------
def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare and run one search with `args.one` validation users (0 = all); returns its figures."""
    from paprec_cli.plugins import load_registry
    from paprec_cli.search import runner
    from paprec_cli.search.config import SearchConfig, batch_sizes, protocol_options
    from paprec_cli.search.rundir import RunDir

    device = resolve_device(args.device)
    reset_peak_memory(device)
    home = open_home(args.home)
    registry = load_registry()
    config = SearchConfig(
        task=args.task, dataset=args.dataset, model=args.model_path, n_prefix=0, n_suffix=args.n_suffix,
        n_personal=args.n_personal, val_users=args.one or None, grad_examples=args.grad_examples,
        evaluator=args.evaluator, batch_size=args.batch_size, seed=args.seed,
        **protocol_options(args.protocol, top_k=args.top_k, max_rounds=args.max_rounds),
    )  # fmt: skip
    with stopwatch(device) as prep:
        session = runner.prepare(config, registry, home, str(device))
    with tempfile.TemporaryDirectory(prefix="paprec-bench-run-") as tmp:
        run = RunDir.create(Path(tmp) / "run", runner.manifest(session))
        cpu = time.process_time()
        with stopwatch(device) as searched:
            state = runner.search(session, run, None)
        search_cpu = time.process_time() - cpu
        round_s = seconds_per_round(Path(tmp) / "run" / "trajectory.jsonl")
        finalize_s = None
        if args.finalize:
            with stopwatch(device) as fin:
                runner.finalize(session, run, state)
            finalize_s = round(fin[0], 3)
    problem = session.problem
    return {
        "users": len(problem.users),
        "examples": len(problem.validation.examples),
        "prepare_s": round(prep[0], 3),
        "search_s": round(searched[0], 3),
        "search_cpu_s": round(search_cpu, 3),
        "finalize_s": finalize_s,
        "steps": state.steps,
        "rounds": state.round,
        "stop_reason": state.stop_reason,
        "s_per_user": round(searched[0] / max(1, len(problem.users)), 6),
        "s_per_step": round(searched[0] / max(1, state.steps), 4),
        "round_s": round_s,
        "s_per_round": round(sum(round_s) / len(round_s), 3) if round_s else None,
        "initial_surrogate": state.initial_value,
        "final_surrogate": state.history[-1] if state.history else state.initial_value,
        "batch_sizes": dict(zip(("surrogate", "gradient"), batch_sizes(config.batch_size, str(device)), strict=True)),
        **peak_memory(device),
    }


def seconds_per_round(trajectory: Path) -> list[float]:
    """Wall seconds of each round, in round order: the sum of its steps' `seconds` in `trajectory.jsonl`."""
    totals: dict[int, float] = {}
    if trajectory.is_file():
        for line in trajectory.read_text(encoding="utf-8").splitlines():
            if line.strip():
                step = json.loads(line)
                totals[int(step["round"])] = totals.get(int(step["round"]), 0.0) + float(step.get("seconds") or 0.0)
    return [round(totals[r], 3) for r in sorted(totals)]


# -- the parent: model, sizes, children, table -----------------------------------------------------------
def resolve_model(args: argparse.Namespace) -> tuple[Any, Path, str]:
    """(home, model folder, source) for the search; saves a random model once when none is trained."""
    from paprec_cli.model import save_model
    from paprec_cli.plugins import load_registry

    registry = load_registry()
    home, scratch = open_home(args.home), open_home(SCRATCH_HOME)
    name = f"{args.dataset}-{args.size}-{args.ids}"
    if args.model not in ("auto", "random"):
        ensure_dataset(home, args.dataset, registry)
        return home, Path(args.model), f"loaded:{args.model}"
    if args.model == "auto":
        found = find_model([home, scratch], name)
        if found is not None:
            ensure_dataset(found[0], args.dataset, registry)
            return found[0], found[1], f"trained:{found[1]}"
    folder = scratch.model_dir(f"{name}-random")
    dataset = ensure_dataset(scratch, args.dataset, registry)
    fingerprint_ok = False
    if (folder / "config.json").is_file():
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        fingerprint_ok = (saved.get("dataset") or {}).get("fingerprint") == dataset.fingerprint
    if not fingerprint_ok:
        say(f"saving a randomly initialised {args.size}/{args.ids} model to {folder}")
        save_model(random_model(dataset, registry, args.size, args.ids, args.seed), folder)
    return scratch, folder, "random"


def validation_users(home: Any, args: argparse.Namespace) -> int:
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import load_dataset

    return len(TaskData(load_dataset(home, args.dataset), 0).loo.users("validation"))


def parse_sizes(text: str, total: int) -> list[int]:
    """`500,5000,all` -> sorted distinct user counts, each at most `total`."""
    sizes = {total if part.strip() == "all" else min(int(part), total) for part in text.split(",") if part.strip()}
    return sorted(sizes)


def parse_points(text: str) -> list[tuple[str, int]]:
    """`synthetic:600,beauty:5000` -> [("synthetic", 600), ("beauty", 5000)]."""
    points = []
    for part in text.split(","):
        name, sep, users = part.strip().partition(":")
        if not sep or not name or not users.strip().isdigit() or int(users) < 1:
            raise SystemExit(f"--points: '{part}' is not <dataset>:<users> (e.g. synthetic:600)")
        points.append((name, int(users)))
    return points


def per_round(args: argparse.Namespace) -> dict[str, Any]:
    """`--per-round`: one search per point, seconds per round in one table and one JSON document."""
    device = resolve_device(args.device)
    started, rows = time.perf_counter(), []
    for dataset, wanted in parse_points(args.points):
        point = argparse.Namespace(**{**vars(args), "dataset": dataset})
        home, model, source = resolve_model(point)
        users = min(wanted, validation_users(home, point))
        left = args.max_seconds - (time.perf_counter() - started) if args.max_seconds else args.child_timeout
        found = child(point, home, model, users, min(left, args.child_timeout)) if left >= 5 else {
            "users": users, "error": "not run (out of time)"}
        rows.append({"dataset": dataset, "requested_users": wanted, "model_source": source, "model": str(model),
                     **found})
    hidden = ("one", "model_path")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in hidden}
    caps = {"max_rounds": args.max_rounds, "points": args.points, "n_suffix": args.n_suffix, "top_k": args.top_k,
            "grad_examples": args.grad_examples}
    doc = document("search-rounds", device, settings=settings,
                   sizes={"model_size": args.size, "ids": args.ids, "torch_threads": torch.get_num_threads()},
                   caps=caps, results={"per_point": rows}, parent_memory=peak_memory(device))
    out = args.out or (Path(os.environ[OUT_ENV]) if os.environ.get(OUT_ENV) else None)
    out = out or Path(tempfile.mkdtemp(prefix="paprec-bench-rounds-"))
    path = write_result(doc, out, device, suffix="-quick" if args.quick else "")
    table = [(r["dataset"], r["users"], r.get("model_source"), r.get("rounds"), r.get("steps"), r.get("s_per_round"),
              " ".join(f"{s:.2f}" for s in r.get("round_s") or []) or r.get("error", "-"), r.get("search_s"),
              r.get("prepare_s")) for r in rows]  # fmt: skip
    print_table(
        f"search seconds per round: {args.size}/{args.ids}, max {args.max_rounds} rounds, top-{args.top_k}, "
        f"on {device} ({torch.get_num_threads()} threads)",
        ["dataset", "users", "model", "rounds", "steps", "s/round", "each round s", "search s", "prepare s"],
        table, stream=sys.stderr if args.json else None,
    )
    say(f"wrote {path}")
    if args.json:
        emit_json(doc | {"result_file": str(path)})
    return doc


def child(args: argparse.Namespace, home: Any, model: Path, users: int, timeout: float) -> dict[str, Any]:
    """Run one size in a fresh process; a size that fails or runs out of time is reported as such."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(users), "--model-path", str(model),
           "--home", str(home.root)]
    for key in ("dataset", "task", "device", "n_suffix", "n_personal", "top_k", "grad_examples", "max_rounds",
                "evaluator", "batch_size", "seed", "protocol"):
        if getattr(args, key) is not None:  # None: the child's own default (e.g. --batch-size by device)
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.finalize:
        cmd.append("--finalize")
    say(f"search with {users} validation users ...")
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"search with {users} users: out of time after {timeout:.0f}s")
        return {"users": users, "error": f"timeout after {timeout:.0f}s"}
    if proc.returncode != 0:
        say(f"search with {users} users failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return {"users": users, "error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from paprec_cli.search.config import DEFAULT_PROTOCOL, PROTOCOLS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--task", default="sequential")
    parser.add_argument("--val-users", default=None, help="comma-separated sizes, 'all' for every user")
    parser.add_argument("--size", choices=("tiny", "small", "base"), default="tiny")
    parser.add_argument("--ids", choices=("atomic", "subword"), default="atomic")
    parser.add_argument("--model", default="auto", help="auto (trained if found, else random), random, or a folder")
    parser.add_argument("--n-suffix", type=int, default=5)
    parser.add_argument("--n-personal", type=int, default=1)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--grad-examples", type=int, default=256)
    parser.add_argument("--max-rounds", type=int, default=None, help="round cap (default 2 on CPU, 20 on GPU)")
    parser.add_argument("--evaluator", choices=("fast", "beam"), default="fast")
    parser.add_argument("--protocol", choices=tuple(PROTOCOLS), default=DEFAULT_PROTOCOL,
                        help=f"the search protocol (as paprec search --protocol; default {DEFAULT_PROTOCOL}); "
                             "its --init is used (history: manual, so --n-suffix is the template's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per forward pass (default: the search's: 256; on CUDA 2048 surrogate, 512 gradient)")
    parser.add_argument("--finalize", action="store_true", help="also time the final validation/test evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child-timeout", type=float, default=3600.0, help="seconds allowed per size")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="total seconds for all sizes: a size that would overrun is stopped and reported")
    parser.add_argument("--per-round", action="store_true",
                        help="seconds per round at each --points entry, one table and JSON (temporary folder "
                             "unless --out)")
    parser.add_argument("--points", default="synthetic:600,beauty:5000",
                        help="--per-round: comma-separated <dataset>:<validation users>")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child mode: one size
    parser.add_argument("--model-path", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.val_users = args.val_users or "25,50"
        args.n_suffix, args.top_k, args.grad_examples = min(args.n_suffix, 2), min(args.top_k, 2), 32
        args.max_rounds = args.max_rounds or 1
    on_gpu = resolve_device(args.device).type == "cuda"
    args.val_users = args.val_users or ("500,5000,all" if on_gpu else "100,300,all")
    args.max_rounds = args.max_rounds or (20 if on_gpu else 2)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args)), flush=True)
        return None
    if args.per_round:
        return per_round(args)
    device = resolve_device(args.device)
    home, model, source = resolve_model(args)
    total = validation_users(home, args)
    sizes = parse_sizes(args.val_users, total)
    started, attempted = time.perf_counter(), []
    for n in sizes:
        left = args.max_seconds - (time.perf_counter() - started) if args.max_seconds else args.child_timeout
        if left < 5:
            break
        attempted.append(child(args, home, model, n, min(left, args.child_timeout)))
        if "error" in attempted[-1]:
            break
    rows = [r for r in attempted if "error" not in r]
    failed = [r for r in attempted if "error" in r] + [{"users": n, "error": "not run (out of time)"}
                                                       for n in sizes[len(attempted):]]
    if not rows:
        raise SystemExit(f"no search size finished: {failed}")
    users = [r["users"] for r in rows]
    growth = {
        "search_s_exponent": fit_exponent(users, [r["search_s"] for r in rows]),
        "search_cpu_s_exponent": fit_exponent(users, [r["search_cpu_s"] for r in rows]),
        "s_per_step_exponent": fit_exponent(users, [r["s_per_step"] for r in rows]),
    }
    hidden = ("one", "model_path")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in hidden}
    caps = {"max_rounds": args.max_rounds, "protocol": args.protocol, "val_users": sizes,
            "n_suffix": args.n_suffix, "top_k": args.top_k, "grad_examples": args.grad_examples,
            "finalize": args.finalize}
    doc = document(
        "search", device, settings=settings,
        sizes={"dataset": args.dataset, "task": args.task, "validation_users_total": total, "model_size": args.size,
               "ids": args.ids, "torch_threads": torch.get_num_threads()},
        model={"source": source, "path": str(model), "trained": source != "random"},
        caps=caps,
        results={"per_size": rows, "not_finished": failed, "growth": growth,
                 "peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
                 "peak_cuda_mib": max((r["peak_cuda_mib"] or 0) for r in rows) or None},
        parent_memory=peak_memory(device),
    )  # fmt: skip
    path = write_result(doc, args.out, device, suffix=f"-{args.dataset}" + ("-quick" if args.quick else ""))
    table = [(r["users"], r["steps"], r["stop_reason"], r["prepare_s"], r["search_s"], r["s_per_user"],
              r["s_per_step"], r["s_per_round"], r["peak_rss_mib"], r["peak_cuda_mib"]) for r in rows]
    print_table(
        f"search cost vs validation users: {args.dataset}, {args.size}/{args.ids} ({source}), max {args.max_rounds} "
        f"rounds, top-{args.top_k}, {args.protocol} protocol, on {device}; "
        f"growth exponent {growth['search_s_exponent']} "
        f"(per step {growth['s_per_step_exponent']})",
        ["users", "steps", "stop", "prepare s", "search s", "s/user", "s/step", "s/round", "peak RSS MiB",
         "peak CUDA MiB"],
        table, stream=sys.stderr if args.json else None,
    )  # fmt: skip
    say(f"wrote {path}")
    if args.json:
        emit_json(doc | {"result_file": str(path), "growth": growth})
    return doc


if __name__ == "__main__":
    main()
