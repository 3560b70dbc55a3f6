"""Training throughput of paprec's RLM: examples/s and tokens/s per model size, and on CUDA the model
FLOP utilisation (MFU).

It times real training steps (the `paprec train` step: AdamW, clipping, bf16 autocast on CUDA) on
batches of the synthetic dataset's multitask pairs (sequential + direct + rating, auxiliary word
families included), after a few warm-up steps. Tokens are non-padding encoder tokens plus decoder
target tokens. MFU = 6 * parameters * tokens/s / the card's dense bf16 peak (H100 SXM and H200:
989 TFLOP/s); it is also given with non-embedding parameters only, since embedding rows cost no
matmul FLOPs except through the LM head.

    python bench/train.py [--size tiny|small] [--quick] [--json] [--device auto|cpu|cuda] [--out DIR]

Prints a table and writes JSON (machine, versions, device, figures) to --out (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import OUT_HELP, results_dir

#: Dense bf16 peak FLOP/s by device-name fragment (first match wins).
PEAKS = (
    ("H200", 989e12, "H200 SXM dense bf16 (same as H100 SXM)"),
    ("H100", 989e12, "H100 SXM dense bf16"),
    ("A100", 312e12, "A100 dense bf16"),
    ("L40S", 362e12, "L40S dense bf16"),
    ("L4", 121e12, "L4 dense bf16"),
)


def peak_flops(device: torch.device) -> tuple[float | None, str]:
    if device.type != "cuda":
        return None, "no peak assumed on CPU"
    name = torch.cuda.get_device_name(device)
    for fragment, peak, label in PEAKS:
        if fragment in name:
            return peak, f"{label}: {peak / 1e12:.0f} TFLOP/s (device '{name}')"
    return None, f"unknown peak for '{name}'; MFU not computed"


def synthetic_pairs(home: Path, seed: int) -> tuple[Any, Any]:
    """The synthetic dataset (default options) and one epoch of training pairs."""
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import import_dataset, load_dataset
    from paprec_cli.paths import Home
    from paprec_cli.plugins import load_registry
    from paprec_cli.training.mixture import Mixture, TrainingData

    registry = load_registry()
    paprec_home = Home.resolve(home)
    import_dataset(registry.dataset("synthetic"), None, paprec_home)
    dataset = load_dataset(paprec_home, "synthetic")
    tasks = [registry.task(name) for name in ("sequential", "direct", "rating")]
    training = TrainingData(TaskData(dataset, seed), tasks, Mixture(), seed)
    return dataset, training


@functools.cache
def prepared(home: Path, seed: int) -> tuple[Any, Any]:
    """(codec, one encoded epoch): built once per process, shared by every size and batch size."""
    from paprec_cli.model import build_codec
    from paprec_cli.training.batches import encode_pairs

    dataset, training = synthetic_pairs(home, seed)
    codec = build_codec(dataset, "atomic", training.texts())
    return codec, encode_pairs(codec, training.epoch(1))


def measure(
    size: str,
    device: str,
    batch_size: int,
    warmup: int,
    steps: int,
    home: Path,
    seed: int = 0,
    compile_model: bool = False,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Time `steps` training steps after `warmup` steps for one model size and batch size; with
    `profile_dir`, profile 5 more steps (not timed) and write torch.profiler's tables there."""
    from paprec_cli.model import create_model
    from paprec_cli.training.batches import iterate_batches
    from paprec_cli.training.loop import Trainer
    from paprec_cli.training.recipe import recipe_for

    codec, encoded = prepared(home, seed)
    bundle = create_model(size, codec, seed)
    model = bundle.model.to(device)
    params = sum(p.numel() for p in model.parameters())
    embedding = model.t5.shared.weight.numel() + model.whole_word.weight.numel()
    recipe = recipe_for(size)
    trainer = Trainer(model, recipe, device, planned_steps=10 * (warmup + steps))
    if compile_model:
        trainer.net = torch.compile(model, dynamic=True)  # the warm-up steps absorb the compile time
    # Collated up front (a data loader's prefetch would hide it); its cost is reported separately.
    collate_start = time.perf_counter()
    pool = list(itertools.islice(iterate_batches(codec, encoded, batch_size, seed), warmup + steps))
    collate_ms = 1000 * (time.perf_counter() - collate_start) / max(len(pool), 1)
    batches = itertools.cycle(pool)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        trainer.train_step(next(batches))
    sync()
    examples = tokens = 0
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        trainer.train_step(batch)
        examples += len(batch)
        tokens += batch.n_tokens
    sync()
    seconds = time.perf_counter() - start
    name = f"{trainer.device.type}-{size}-{batch_size}" + ("-compiled" if compile_model else "")
    profile_file = profile(trainer, batches, 5, profile_dir, name) if profile_dir else None
    out = {
        "size": size,
        "compiled": compile_model,
        "batch_size": batch_size,
        "steps": steps,
        "parameters": params,
        "non_embedding_parameters": params - embedding,
        "seconds": round(seconds, 3),
        "ms_per_step": round(1000 * seconds / steps, 2),
        "collate_ms_per_batch": round(collate_ms, 2),
        "examples_per_s": round(examples / seconds, 1),
        "tokens_per_s": round(tokens / seconds, 1),
        "tokens_per_example": round(tokens / max(examples, 1), 1),
    }
    if profile_file is not None:
        out["profile_file"] = str(profile_file)
    peak, _ = peak_flops(torch.device(device))
    if peak:
        achieved = 6 * params * tokens / seconds
        out["achieved_tflops"] = round(achieved / 1e12, 3)
        out["mfu"] = round(achieved / peak, 5)
        out["mfu_non_embedding"] = round(6 * (params - embedding) * tokens / seconds / peak, 5)
    return out


def profile(trainer: Any, batches: Iterator[Any], steps: int, folder: Path, name: str) -> Path:
    """torch.profiler over `steps` training steps: where a step's time goes (host vs device), as text tables."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    activities = [ProfilerActivity.CPU]
    cuda = trainer.device.type == "cuda"
    if cuda:
        activities.append(ProfilerActivity.CUDA)
    with profiler(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step(next(batches))
        if cuda:
            torch.cuda.synchronize()
    averages = prof.key_averages()
    parts = [f"# {steps} training steps, {name}, {trainer.device}\n", "## by self CPU time\n",
             averages.table(sort_by="self_cpu_time_total", row_limit=30)]
    if cuda:
        parts += ["\n## by self device time\n", averages.table(sort_by="self_device_time_total", row_limit=30)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"train-profile-{name}.txt"
    path.write_text("".join(parts), encoding="utf-8")
    return path


def measured_or_failed(
    size: str, device: str, batch: int, warmup: int, steps: int, home: Path, compiled: bool,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """One configuration's row; running out of GPU memory is a result (recorded), not the end of the run."""
    try:
        return measure(size, device, batch, warmup, steps, home, compile_model=compiled, profile_dir=profile_dir)
    except torch.OutOfMemoryError as exc:
        return {"size": size, "compiled": compiled, "batch_size": batch, "error": f"out of memory: {exc}"[:200]}
    finally:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def write_json(path: Path, report: dict[str, Any]) -> None:
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def machine() -> dict[str, Any]:
    import transformers

    from paprec_cli import __version__

    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "paprec": __version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "small"), help="one size (default: tiny and small)")
    parser.add_argument("--quick", action="store_true", help="few steps (under a minute on a CPU)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--batch-sizes", default=None, help="comma-separated batch sizes to time (default: 64 on CPU, 256,1024 on CUDA)"
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model) (CUDA only)")
    parser.add_argument("--steps", type=int, help="timed steps per configuration (default: 100 on CUDA)")
    parser.add_argument("--profile", action="store_true",
                        help="after each configuration's timed steps, profile 5 more (tables next to the JSON)")
    parser.add_argument("--out", type=Path, default=None, help=OUT_HELP)
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {device}: no CUDA device visible")
    cuda = device.startswith("cuda")
    batches = [int(b) for b in (args.batch_sizes or ("256,1024" if cuda else "64")).split(",")]
    sizes = [args.size] if args.size else ["tiny", "small"]
    plan = {"tiny": (3, 10 if args.quick else 40), "small": (2, 4 if args.quick else 15)}
    if cuda:
        plan = {"tiny": (10, 30 if args.quick else 100), "small": (10, 30 if args.quick else 100)}
    if args.steps:
        plan = {size: (warmup, args.steps) for size, (warmup, _) in plan.items()}
    _, peak_note = peak_flops(torch.device(device))
    report = {
        "benchmark": "train",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "autocast": "bf16" if cuda else "none (fp32)",
        "peak": peak_note,
        "quick": args.quick,
        "results": [],
    }
    args.out = results_dir(args.out)
    path = args.out / f"train-{'cuda' if cuda else 'cpu'}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with tempfile.TemporaryDirectory(prefix="paprec-bench-") as tmp:
        variants = [False, True] if (args.compile and cuda) else [False]
        for size in sizes:
            warmup, steps = plan[size]
            for batch in batches:
                for compiled in variants:
                    row = measured_or_failed(size, device, batch, warmup, steps, Path(tmp), compiled,
                                             args.out if args.profile else None)
                    report["results"].append(row)
                    write_json(path, report)  # after every row: a later kill or OOM keeps what was measured
                    print(f"{size} batch {batch} compiled={compiled}: {row.get('examples_per_s', '-')} ex/s, "
                          f"mfu {row.get('mfu', '-')} {row.get('error', '')}", file=sys.stderr)
    print_table(report, to_stderr=args.json)
    print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
    return 0


def print_table(report: dict[str, Any], to_stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"paprec training throughput on {report['device']} ({report['autocast']})")
    columns = ["size", "compiled", "parameters", "batch_size", "ms_per_step", "examples_per_s", "tokens_per_s", "mfu"]
    for column in columns:
        table.add_column(column, justify="right")
    for row in report["results"]:
        table.add_row(*(str(row.get(c, "-")) for c in columns))
    console = Console(stderr=to_stderr)
    console.print(table)
    console.print(
        f"peak: {report['peak']}; threads {report['machine']['torch_threads']}, "
        f"load {report['machine']['load_average']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
