"""Host cost of one search step's rows: building candidates x validation prompts and collating them.

What is measured, and how:
- One search step scores every validation example under every candidate (`--candidates`) of one shared
  slot. Before the model sees anything, the host builds those rows and collates them into padded batches.
- *per-row*: each row as an `EncodedPrompt` (`PromptCodec.assemble`, one trigger tuple per row) and
  `collate` per batch: how the search built its rows before the array path.
- *arrays*: `PromptBuilder.rows` (the arguments padded into one table once, each batch cut from it with
  numpy indexing): how the search builds them now.
- Both produce the batches in the search's order (sorted by length, `--batch-size` rows each); every
  batch is compared tensor for tensor, and the run fails if any differs. No model runs: this is the
  host time a GPU cannot hide. Reported as microseconds per row, best of `--repeats`.

Usage: python bench/rows.py [--quick] [--json] [--dataset beauty|synthetic] [--users N|all] [--candidates K]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    OUT_HELP,
    SCRATCH_HOME,
    document,
    emit_json,
    ensure_dataset,
    open_home,
    print_table,
    say,
    write_result,
)


def per_row_batches(builder: Any, codec: Any, triggers: np.ndarray, batch_size: int) -> list[Any]:
    from paprec_cli.model import predict  # imported (transformers and all) before anything is timed

    n = len(builder)
    prompts = [builder.prompt(r % n, tuple(t)) for r, t in enumerate(triggers.tolist())]
    return [codec.collate([prompts[i] for i in idx]) for idx in predict.batch_indices(prompts, batch_size)]


def array_batches(examples: Any, base: np.ndarray, slot: int, candidates: np.ndarray, batch_size: int) -> list[Any]:
    """The search's own path: `ExampleSet.rows` over [C, N, T] blocks (as `ModelProblem.evaluate_shared`)."""
    from paprec_cli.model import predict

    blocks = np.repeat(base[None], len(candidates), axis=0)
    blocks[:, :, slot] = candidates[:, None]
    rows = examples.rows(blocks)
    return [rows.collate(idx) for idx in predict.batch_indices(rows, batch_size)]


def best_of(repeats: int, fn: Any) -> tuple[Any, float]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="synthetic, 200 users (seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--ids", default="atomic", choices=["atomic", "subword"])
    parser.add_argument("--task", default="sequential")
    parser.add_argument("--users", default="all", help="validation users (a number or all)")
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--n-suffix", type=int, default=5)
    parser.add_argument("--n-personal", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help=OUT_HELP)
    args = parser.parse_args(argv)
    if args.quick:
        args.dataset, args.users, args.repeats = "synthetic", "200", 1

    from paprec_cli.data.splits import TaskData
    from paprec_cli.model import build_codec, predict  # noqa: F401  (imported here, not inside the timing)
    from paprec_cli.plugins import load_registry
    from paprec_cli.search.layout import Layout, PromptBuilder
    from paprec_cli.search.problem import ExampleSet
    from paprec_cli.search.runner import sample_validation
    from paprec_cli.training.words import AUX_TEXTS

    registry = load_registry()
    dataset = ensure_dataset(open_home(SCRATCH_HOME), args.dataset, registry)
    texts = [t.source for entry in registry.tasks.values() for t in entry.spec.templates] + list(AUX_TEXTS)
    codec = build_codec(dataset, args.ids, texts)  # type: ignore[arg-type]
    task = registry.task(args.task)
    users = None if args.users == "all" else int(args.users)
    validation = sample_validation(task.examples(TaskData(dataset, 0), "validation"), users, 0)
    layout = Layout(0, args.n_suffix, args.n_personal)
    builder = PromptBuilder(codec, layout, [ex.argument for ex in validation])
    examples = ExampleSet(validation, builder, np.zeros(len(validation), dtype=np.int64))
    rng = np.random.default_rng(0)
    base = rng.integers(codec.text_vocab_size // 2, codec.text_vocab_size, size=(len(validation), layout.n_triggers))
    candidates = rng.integers(3, codec.text_vocab_size, size=args.candidates)
    slot = 0
    blocks = np.repeat(base[None], len(candidates), axis=0)
    blocks[:, :, slot] = candidates[:, None]
    flat = blocks.reshape(-1, layout.n_triggers)
    n_rows = flat.shape[0]
    say(f"{args.dataset}: {len(validation)} validation examples x {args.candidates} candidates = {n_rows} rows")

    old, old_s = best_of(args.repeats, lambda: per_row_batches(builder, codec, flat, args.batch_size))
    new, new_s = best_of(args.repeats, lambda: array_batches(examples, base, slot, candidates, args.batch_size))
    identical = len(old) == len(new) and all(
        torch.equal(a.input_ids, b.input_ids) and torch.equal(a.attention_mask, b.attention_mask)
        and torch.equal(a.whole_word_ids, b.whole_word_ids)
        for a, b in zip(old, new, strict=True)
    )  # fmt: skip
    results = {
        "rows": n_rows,
        "batches": len(new),
        "per_row_us_per_row": round(1e6 * old_s / n_rows, 3),
        "arrays_us_per_row": round(1e6 * new_s / n_rows, 3),
        "per_row_s": round(old_s, 4),
        "arrays_s": round(new_s, 4),
        "speedup": round(old_s / new_s, 2),
        "identical": identical,
    }
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    sizes = {"validation_examples": len(validation), "candidates": args.candidates, "triggers": layout.n_triggers}
    doc = document("rows", torch.device("cpu"), settings, sizes=sizes, results=results)
    path = write_result(doc, args.out, torch.device("cpu"), f"-{args.dataset}-{args.ids}")
    print_table(f"host cost of one search step ({args.dataset}, {n_rows} rows)", ["path", "us per row", "seconds"],
                [["per-row (assemble + collate)", results["per_row_us_per_row"], results["per_row_s"]],
                 ["arrays (PromptBuilder.rows)", results["arrays_us_per_row"], results["arrays_s"]]],
                stream=sys.stderr if args.json else None)
    say(f"speed-up {results['speedup']}x; batches identical: {identical}; written to {path}")
    if args.json:
        emit_json({**doc, "result_file": str(path), **results})
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
