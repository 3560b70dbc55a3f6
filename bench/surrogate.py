"""The search's surrogate evaluator vs the reference-style 20-beam evaluator, side by side.

What is measured, and how:
- One model, one seeded sample of validation users (`--users`) and one task (`--task`, default sequential).
- A *step* is one shared trigger slot at one prompt state (a seeded random draw of trigger tokens) with
  its top-`--candidates` gradient candidates, proposed by the search's own `ModelProblem.shared_candidates`.
  Steps run over every shared slot of several prompt states until `--steps` are done.
- Each step is scored by both evaluators through `ModelProblem.evaluate_shared` (the search's code path):
  *ours* (`--evaluator fast`: all candidates x users batched; one-pass exact ranking for atomic ids,
  trie-constrained KV-cached beam search for subword ids) and the *baseline* (`--evaluator beam`: 20-beam
  `generate`, one candidate at a time). The two run back to back, alternating which goes first.
  ms/user/candidate = wall seconds x 1000 / (users x candidates); `speedup` = baseline ms / our ms.
- Each evaluator's choice is the candidate with the best overall surrogate (per-user means weighted by
  examples, as the schedule does). `same_choice_rate` = share of steps where both choose the same token;
  `not_worse_rate` = share of steps where our choice's *exact* metric (full ranking over all items: one
  pass for atomic ids, every item's teacher-forced log-probability for subword ids) is at least the
  baseline choice's on the same users. It is null for `--model random` (not computed: an untrained
  model's choices say nothing, and the exact subword reference costs minutes at Beauty size).
- `flop_ratio`: model FLOPs per user per candidate of the baseline over ours (torch's FlopCounterMode on
  one more, untimed pass of each over every user, padding included): the speed-up a device could reach if
  both ran at the same efficiency. A measured speed-up far above it means the baseline runs inefficiently,
  not that ours computes less. `--no-flops` skips the count.
- Model: `--model auto` uses `<home>/models/<dataset>-<size>-<ids>` if present (also in the benchmark's
  scratch home), else trains one there with `paprec train --time-budget` (not under --quick, which uses
  a randomly initialised model instead); `--model random` always uses a fresh model (speed only: choices
  of an untrained model are mostly ties and say nothing about agreement); `--model PATH` loads a folder.

Usage: python bench/surrogate.py [--quick] [--json] [--device cpu|cuda] [--ids atomic|subword]
       [--users N] [--candidates K] [--steps S] [--size tiny|small] [--dataset synthetic|beauty]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    SCRATCH_HOME,
    add_common_args,
    document,
    emit_json,
    ensure_dataset,
    find_model,
    measure,
    open_home,
    peak_memory,
    print_table,
    random_model,
    resolve_device,
    say,
    timed,
    train_model,
    write_result,
)

from paprec_cli.specs import Example, TaskSpec

BEAMS = 20


@dataclass
class Setup:
    """Everything both evaluators share."""

    device: torch.device
    bundle: Any
    model_source: str  # "trained:<path>" | "loaded:<path>" | "random"
    dataset: Any
    task: TaskSpec
    recommender: Any
    validation: list[Example]
    problems: dict[str, Any]  # "fast" | "beam" | "exact" -> ModelProblem
    vocab: torch.Tensor
    layout: Any


class ExactScorer:
    """The task's surrogate on an exact ranking over all items (the reference for `not_worse_rate`).

    atomic ids: `rank_all` is already exact (one decoder step, top-k over every item row). subword ids:
    every item's teacher-forced log-probability (`score_candidates` over all items), then top-k."""

    batched = True

    def __init__(self, recommender: Any, task: TaskSpec, batch_size: int, k: int = 10) -> None:
        self.recommender, self.task, self.batch_size, self.k = recommender, task, batch_size, k

    def __call__(self, prompts: Any, examples: list[Example]) -> np.ndarray:
        from paprec_cli.model.rows import as_rows

        rec = self.recommender
        n_items = rec.codec.n_items
        prompts = as_rows(prompts, rec.codec)
        preds = np.zeros((len(prompts), self.k), dtype=np.int64)
        rows = max(1, self.batch_size if rec.codec.id_scheme == "atomic" else self.batch_size * 64 // n_items)
        every = torch.arange(1, n_items + 1).unsqueeze(0)
        with torch.no_grad():
            for start in range(0, len(prompts), rows):
                batch = prompts.collate(np.arange(start, min(start + rows, len(prompts))), rec.device)
                if rec.codec.id_scheme == "atomic":
                    top = rec.rank_all(batch, self.k)
                else:
                    scores = rec.score_candidates(batch, every.expand(len(batch), -1))
                    top = scores.topk(min(self.k, n_items), dim=1).indices + 1
                preds[start : start + len(batch), : top.shape[1]] = top.cpu().numpy()
        return np.asarray(self.task.surrogate(preds, list(examples)), dtype=np.float64)


# -- setup ---------------------------------------------------------------------------------------------
def load_setup(args: argparse.Namespace, device: torch.device) -> Setup:
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import dataset_exists
    from paprec_cli.model import Recommender, load_model
    from paprec_cli.plugins import load_registry
    from paprec_cli.registry import split_seed
    from paprec_cli.search.config import batch_sizes
    from paprec_cli.search.layout import Layout
    from paprec_cli.search.problem import ModelProblem
    from paprec_cli.search.runner import sample_training, sample_validation
    from paprec_cli.search.surrogate import BeamScorer, FastScorer
    from paprec_cli.search.vocab import candidate_vocabulary

    registry = load_registry()
    home = open_home(args.home)
    scratch = open_home(SCRATCH_HOME)
    name = f"{args.dataset}-{args.size}-{args.ids}"
    if args.model == "random":
        found = None
    elif args.model == "auto":
        found = find_model([home, scratch], name)
        if found is None and not args.quick:
            ensure_dataset(scratch, args.dataset, registry)
            found = scratch, train_model(scratch, args.dataset, args.size, args.ids, args.train_budget, device)
    else:
        found = home, Path(args.model)
    if found is None:  # a random model: the dataset from --home, else imported into the scratch home
        dataset = ensure_dataset(home if args.home or dataset_exists(home, args.dataset) else scratch,
                                 args.dataset, registry)
        bundle, source = random_model(dataset, registry, args.size, args.ids, args.seed), "random"
    else:
        model_home, folder = found
        dataset = ensure_dataset(model_home, args.dataset, registry)
        bundle = load_model(str(folder), model_home, dataset=dataset)
        source = f"{'trained' if args.model == 'auto' else 'loaded'}:{folder}"
    bundle.model.requires_grad_(False)
    bundle.model.eval()
    task = registry.task(args.task)
    data = TaskData(dataset, split_seed(bundle))
    recommender = Recommender(bundle.model, bundle.codec, device)
    validation = sample_validation(task.examples(data, "validation"), args.users, args.seed)
    users = {ex.user for ex in validation}
    shared_grad, _ = sample_training(task.examples(data, "train"), users, args.grad_examples, 0, args.seed)
    layout = Layout(0, args.n_suffix, 0)
    vocab = candidate_vocabulary(bundle.codec)
    rows, grad_rows = batch_sizes(args.batch_size, str(device))  # the search's own defaults; both evaluators alike
    args.batch_size = rows
    scorers = {
        "fast": FastScorer(recommender, task, rows),
        "beam": BeamScorer(recommender, task, rows),
        "exact": ExactScorer(recommender, task, rows),
    }
    problems = {
        key: ModelProblem(recommender, task, layout, vocab, top_k=args.candidates, scorer=scorer,
                          validation=validation, shared_grad=shared_grad, personal_grad=[],
                          batch_size=grad_rows)
        for key, scorer in scorers.items()
    }
    return Setup(device, bundle, source, dataset, task, recommender, validation, problems, vocab, layout)


# -- measurement ---------------------------------------------------------------------------------------
def weighted(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[C, U] per-user values -> [C] overall surrogate (the schedule's `overall`)."""
    return (values * weights).sum(axis=1) / weights.sum()


def run_steps(setup: Setup, args: argparse.Namespace) -> list[dict[str, Any]]:
    from paprec_cli.search.vocab import initial_tokens

    fast, beam, exact = setup.problems["fast"], setup.problems["beam"], setup.problems["exact"]
    weights = fast.weights
    steps: list[dict[str, Any]] = []
    # Warm-up (lazy tables, allocator, the baseline's trie): one candidate each, untimed.
    warm = initial_tokens(setup.vocab, setup.layout, args.seed)
    for problem in (fast, beam):
        problem.evaluate_shared(warm, 0, [int(setup.vocab[0])])
    state, started = 0, time.perf_counter()
    while len(steps) < args.steps:  # (the inner loop returns when out of steps or time)
        tokens = initial_tokens(setup.vocab, setup.layout, args.seed + 1 + state)
        state += 1
        for slot in range(setup.layout.n_shared):
            out_of_time = bool(steps) and args.max_seconds and time.perf_counter() - started > args.max_seconds
            if len(steps) >= args.steps or out_of_time:
                return steps
            cands, grad_s = timed(lambda t=tokens, s=slot: fast.shared_candidates(t, s), setup.device)
            order = ("fast", "beam") if len(steps) % 2 == 0 else ("beam", "fast")
            values: dict[str, np.ndarray] = {}
            seconds: dict[str, float] = {}
            cpu: dict[str, float] = {}
            for key in order:
                problem = fast if key == "fast" else beam
                values[key], seconds[key], cpu[key] = measure(
                    lambda p=problem, t=tokens, s=slot, c=cands: p.evaluate_shared(t, s, c), setup.device
                )
            ours = int(np.argmax(weighted(values["fast"], weights)))
            base = int(np.argmax(weighted(values["beam"], weights)))
            picked = sorted({ours, base})
            exact_of: dict[int, float | None] = dict.fromkeys(picked)
            if setup.model_source != "random":  # random weights: agreement means nothing, and exact subword is slow
                exact_values = weighted(exact.evaluate_shared(tokens, slot, [cands[i] for i in picked]), weights)
                exact_of = dict(zip(picked, exact_values.tolist(), strict=True))
            eo, eb = exact_of[ours], exact_of[base]
            n_cells = len(setup.problems["fast"].users) * len(cands)
            steps.append({
                "state": state, "slot": slot, "candidates": [int(c) for c in cands],
                "gradient_s": round(grad_s, 4),
                "ours_s": round(seconds["fast"], 4), "baseline_s": round(seconds["beam"], 4),
                "ours_cpu_s": round(cpu["fast"], 4), "baseline_cpu_s": round(cpu["beam"], 4),
                "ours_ms_per_user_candidate": 1000 * seconds["fast"] / n_cells,
                "baseline_ms_per_user_candidate": 1000 * seconds["beam"] / n_cells,
                "ours_choice": int(cands[ours]), "baseline_choice": int(cands[base]),
                "ours_values": weighted(values["fast"], weights).round(6).tolist(),
                "baseline_values": weighted(values["beam"], weights).round(6).tolist(),
                "exact_ours": exact_of[ours], "exact_baseline": exact_of[base],
                "same_choice": ours == base,
                "not_worse": None if eo is None or eb is None else eo >= eb - 1e-12,
            })  # fmt: skip
            say(f"step {len(steps)}/{args.steps}: ours {seconds['fast']:.2f}s, baseline {seconds['beam']:.2f}s, "
                f"choice {'same' if ours == base else 'differs'}")
    return steps


def count_flops(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    """Model FLOPs per user per candidate of each evaluator (torch's FlopCounterMode over one candidate on
    every user, padding included), and their ratio: the speed-up a compute-bound device could reach at equal
    efficiency. It runs each evaluator once more (untimed)."""
    from torch.utils.flop_counter import FlopCounterMode

    from paprec_cli.search.vocab import initial_tokens

    tokens = initial_tokens(setup.vocab, setup.layout, args.seed)
    n_users = len(setup.problems["fast"].users)
    per_row: dict[str, float] = {}
    for key in ("fast", "beam"):
        with FlopCounterMode(display=False) as counter:
            setup.problems[key].evaluate_shared(tokens, 0, [int(setup.vocab[0])])
        per_row[key] = counter.get_total_flops() / max(n_users, 1)
    ours, base = per_row["fast"], per_row["beam"]
    return {"ours_mflop_per_user_candidate": round(ours / 1e6, 2),
            "baseline_mflop_per_user_candidate": round(base / 1e6, 2),
            "flop_ratio": round(base / ours, 2) if ours else None}


def summarize(steps: list[dict[str, Any]], n_users: int, n_cands: int) -> dict[str, Any]:
    ours = sum(s["ours_s"] for s in steps)
    base = sum(s["baseline_s"] for s in steps)
    ours_cpu = sum(s["ours_cpu_s"] for s in steps)
    base_cpu = sum(s["baseline_cpu_s"] for s in steps)
    cells = n_users * n_cands * len(steps)
    per_step = [s["baseline_s"] / s["ours_s"] for s in steps if s["ours_s"] > 0]
    judged = [s for s in steps if s["not_worse"] is not None]  # none for a random model
    return {
        "steps": len(steps),
        "ours_ms_per_user_candidate": round(1000 * ours / cells, 5),
        "baseline_ms_per_user_candidate": round(1000 * base / cells, 5),
        "speedup": round(base / ours, 2) if ours > 0 else None,
        "speedup_cpu_time": round(base_cpu / ours_cpu, 2) if ours_cpu > 0 else None,
        "speedup_per_step_min": round(min(per_step), 2) if per_step else None,
        "speedup_per_step_max": round(max(per_step), 2) if per_step else None,
        "same_choice_rate": round(sum(s["same_choice"] for s in steps) / len(steps), 3),
        "not_worse_rate": (round(sum(s["not_worse"] for s in judged) / len(judged), 3) if judged else None),
        "ours_total_s": round(ours, 3),
        "baseline_total_s": round(base, 3),
        "gradient_total_s": round(sum(s["gradient_s"] for s in steps), 3),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--ids", choices=("atomic", "subword"), default="atomic")
    parser.add_argument("--size", choices=("tiny", "small", "base"), default="tiny")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--task", default="sequential")
    parser.add_argument("--model", default="auto", help="auto (trained if found, else train), random, or a folder")
    parser.add_argument("--users", type=int, default=None, help="validation users (default 256; quick 16)")
    parser.add_argument("--candidates", type=int, default=None, help="candidates per step (default 5; quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="steps to measure (default 10; quick 2)")
    parser.add_argument("--n-suffix", type=int, default=5, help="shared trigger slots (steps cycle over them)")
    parser.add_argument("--tag", default="", help="appended to the result file's name (two runs of one setting)")
    parser.add_argument("--no-flops", action="store_true",
                        help="skip counting model FLOPs per row (one more untimed pass of each evaluator)")
    parser.add_argument("--grad-examples", type=int, default=None, help="gradient examples (default 128; quick 32)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per pass for both evaluators (default: the search's, 256; on CUDA 2048)")
    parser.add_argument("--train-budget", type=float, default=90.0, help="seconds for training a missing model")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="start no new step after this many seconds of measuring (at least one step runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = (16, 2, 2, 32) if args.quick else (256, 5, 10, 128)
    for key, value in zip(("users", "candidates", "steps", "grad_examples"), defaults, strict=True):
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = resolve_device(args.device)
    setup, load_s = timed(lambda: load_setup(args, device), device)
    n_users = len(setup.problems["fast"].users)
    say(f"model {setup.model_source} ({setup.bundle.codec.id_scheme}, {args.size}); {n_users} users, "
        f"{args.candidates} candidates, {args.steps} steps on {device}")
    steps = run_steps(setup, args)
    summary = summarize(steps, n_users, args.candidates)
    if not args.no_flops:
        summary |= count_flops(setup, args)
    doc = document(
        "surrogate", device,
        settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        sizes={"users": n_users, "candidates": args.candidates, "steps": len(steps), "n_items": setup.dataset.n_items,
               "vocab": int(setup.bundle.codec.vocab_size), "candidate_vocab": int(setup.vocab.numel()),
               "model_size": args.size, "ids": setup.bundle.codec.id_scheme, "dataset": args.dataset,
               "task": args.task, "baseline_beams": BEAMS},
        model={"source": setup.model_source, "trained": setup.model_source != "random",
               "agreement_meaningful": setup.model_source != "random"},
        results=summary, setup_s=round(load_s, 2), memory=peak_memory(device), per_step=steps,
    )  # fmt: skip
    suffix = f"-{args.dataset}-{args.size}-{setup.bundle.codec.id_scheme}" + ("-quick" if args.quick else "")
    suffix += f"-{args.tag}" if args.tag else ""
    path = write_result(doc, args.out, device, suffix=suffix)
    rows = [
        ("ours (fast, batched)", summary["ours_ms_per_user_candidate"], summary["ours_total_s"], "1.00"),
        (f"baseline ({BEAMS}-beam, 1 cand/call)", summary["baseline_ms_per_user_candidate"],
         summary["baseline_total_s"], f"{summary['speedup']}x"),
    ]
    stream = sys.stderr if args.json else None
    print_table(f"surrogate evaluation: {args.dataset}, {args.size}/{setup.bundle.codec.id_scheme}, {n_users} users x "
                f"{args.candidates} candidates x {len(steps)} steps on {device} ({setup.model_source})",
                ["evaluator", "ms/user/candidate", "total s", "speedup"], rows, stream=stream)
    say(f"same_choice_rate {summary['same_choice_rate']}, not_worse_rate {summary['not_worse_rate']}; wrote {path}")
    if "flop_ratio" in summary:
        say(f"model FLOPs per user per candidate: ours {summary['ours_mflop_per_user_candidate']} M, baseline "
            f"{summary['baseline_mflop_per_user_candidate']} M; ratio {summary['flop_ratio']}x (the speed-up at "
            "equal efficiency)")
    if args.json:
        emit_json({k: v for k, v in doc.items() if k != "per_step"} | {"result_file": str(path)} | summary)
    return doc


if __name__ == "__main__":
    main()
