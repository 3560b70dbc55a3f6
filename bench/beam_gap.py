"""How far the k-beam constrained ranking (the search surrogate's) is from the exact ranking, sub-word ids.

What is measured, and how:
- One trained sub-word id model (`--model NAME_OR_PATH` in `--home`), one task (sequential), its manual
  template (`--template`, default the task's), on the validation examples of a seeded sample of
  `--users` validation users (the search's `sample_validation`, seed `--seed`).
- Exact top-k: every item's teacher-forced log-probability, top `--k` (default 5, what NDCG@5 + HR@5 read).
- For each width in `--widths`: the top-k of a width-w trie-constrained beam search; `recovered` = mean
  share of the exact top-k in the beam's top-k; `top1` = share of prompts whose top-1 items agree; and the
  task's surrogate (NDCG@5 + HR@5 per example, averaged) on that ranking next to the exact one.
- `smallest_90` = the narrowest width recovering at least 90% (what `search.surrogate.SURROGATE_BEAMS`
  is set to; docs/BEAM-GAP.md).

Usage: python bench/beam_gap.py --home H --model synthetic-tiny-subword [--users 300] [--widths 5,10,20,40]
       [--k 5] [--seed 0] [--device cpu] [--json] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from common import add_common_args, document, emit_json, open_home, print_table, resolve_device, say, write_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--model", default="synthetic-tiny-subword", help="a sub-word id model (name or folder)")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--task", default="sequential")
    parser.add_argument("--template", default=None, help="manual template id (default: the task's)")
    parser.add_argument("--users", type=int, default=300, help="validation users (seeded sample)")
    parser.add_argument("--widths", default="5,10,20,40", help="beam widths, comma-separated")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.widths = 40, "5,10"

    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import load_dataset
    from paprec_cli.evaluate import manual_prompts
    from paprec_cli.model import Recommender, load_model
    from paprec_cli.model.beam_gap import Recovery, beam_top, exact_top, overlap, smallest_width
    from paprec_cli.plugins import load_registry
    from paprec_cli.registry import split_seed
    from paprec_cli.search.runner import sample_validation

    device = resolve_device(args.device)
    home = open_home(args.home)
    registry = load_registry()
    dataset = load_dataset(home, args.dataset)
    bundle = load_model(args.model, home, dataset=dataset)
    bundle.model.requires_grad_(False)
    task = registry.task(args.task)
    data = TaskData(dataset, split_seed(bundle))
    examples = sample_validation(task.examples(data, "validation"), args.users, args.seed)
    prompts = manual_prompts(bundle.codec, task, examples, args.template)
    rec = Recommender(bundle.model, bundle.codec, device)
    widths = [int(w) for w in args.widths.split(",")]

    started = time.perf_counter()
    exact = exact_top(rec, prompts, args.k)
    exact_s = time.perf_counter() - started
    exact_surrogate = float(np.mean(task.surrogate(exact.numpy(), examples)))
    rows: list[dict[str, Any]] = []
    recoveries = []
    for width in widths:
        started = time.perf_counter()
        found = beam_top(rec, prompts, args.k, width)
        seconds = time.perf_counter() - started
        recovered = float(overlap(found, exact).mean())
        top1 = float((found[:, 0] == exact[:, 0]).double().mean())
        recoveries.append(Recovery(width, recovered, top1, len(prompts)))
        rows.append({"beams": width, "recovered": recovered, "top1": top1,
                     "surrogate": float(np.mean(task.surrogate(found.numpy(), examples))), "seconds": seconds})
        say(f"beams {width}: recovered {recovered:.3f}, top-1 agrees {top1:.3f}, {seconds:.1f} s")
    chosen = smallest_width(recoveries)
    print_table(
        f"exact top-{args.k} recovered by a w-beam constrained ranking ({len(prompts)} prompts; exact surrogate "
        f"{exact_surrogate:.4f}, {exact_s:.1f} s)",
        ["beams", "recovered", "top-1 agrees", "surrogate", "seconds"],
        [[r["beams"], f"{r['recovered']:.3f}", f"{r['top1']:.3f}", f"{r['surrogate']:.4f}", f"{r['seconds']:.1f}"]
         for r in rows],
        stream=sys.stderr if args.json else None,
    )
    say(f"smallest width recovering >= 90%: {chosen}")
    settings = {"model": str(args.model), "dataset": args.dataset, "task": args.task, "template": args.template,
                "users": args.users, "prompts": len(prompts), "k": args.k, "seed": args.seed, "widths": widths,
                "model_folder": str(bundle.folder)}
    doc = document("beam_gap", device, settings, results=rows, exact={"surrogate": exact_surrogate,
                                                                         "seconds": exact_s},
                   smallest_90=chosen)
    path = write_result(doc, args.out, device, suffix=f"-{args.dataset}")
    say(f"wrote {path}")
    if args.json:
        emit_json(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
