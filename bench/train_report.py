"""What one real `paprec train` run achieved on its machine: model FLOP utilisation (MFU) per epoch, and the
model's test metrics next to popularity and item-kNN, from the model folder it wrote.

Issue #18 asks a GPU session to train `small` on Beauty with bf16 and a batch that fills the card, and to
report MFU and test HR@10 / NDCG@10 next to item-kNN (`bench/gpu.sh`, step `small-beauty`). `bench/train.py`
measures MFU on timed steps of synthetic batches; this reads the training run itself: tokens/s of each epoch
from `training.json` (non-padding encoder tokens plus decoder target tokens, as `bench/train.py` counts them),
parameters from `model.safetensors` (every stored tensor; tied embeddings are stored once), and
MFU = 6 * parameters * tokens/s / the card's dense bf16 peak (`common.BF16_PEAK_TFLOPS`; none on a CPU).

    python bench/train_report.py MODEL_DIR [--device auto|cpu|cuda] [--out DIR] [--json]

Writes `train-report-<machine>-<model name>.json` to --out (default: bench/results or $PAPREC_BENCH_OUT).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from common import OUT_HELP, bf16_peak_tflops, document, emit_json, print_table, resolve_device, write_result


def parameter_count(model_dir: Path) -> int:
    """Elements of every tensor stored in `model_dir/model.safetensors`."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as weights:
        for key in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
            shape = weights.get_slice(key).get_shape()
            count = 1
            for size in shape:
                count *= int(size)
            total += count
    return total


def report(model_dir: Path, device: torch.device) -> dict[str, Any]:
    """Per-epoch throughput and MFU, test metrics and baselines of the run that wrote `model_dir`."""
    record = json.loads((model_dir / "training.json").read_text(encoding="utf-8"))
    params = parameter_count(model_dir)
    peak_tflops = bf16_peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    epochs = []
    for entry in record.get("history", []):
        tokens_per_s = float(entry.get("tokens_per_s") or 0.0)
        row = {
            "epoch": entry["epoch"],
            "partial": entry.get("partial", False),
            "examples_per_s": entry.get("examples_per_s"),
            "tokens_per_s": tokens_per_s,
            "achieved_tflops": round(6 * params * tokens_per_s / 1e12, 4),
            "mfu": round(6 * params * tokens_per_s / (peak_tflops * 1e12), 5) if peak_tflops else None,
            "validation": entry.get("validation"),
        }
        epochs.append(row)
    return {
        "model": record.get("name"),
        "dataset": record.get("dataset"),
        "size": record.get("size"),
        "device_of_run": record.get("device"),
        "batch_size": (record.get("options") or {}).get("recipe", {}).get("batch_size"),
        "parameters": params,
        "bf16_peak_tflops": peak_tflops,
        "epochs": epochs,
        "best_epoch": record.get("best_epoch"),
        "stopped": record.get("stopped"),
        "train_seconds": record.get("train_seconds"),
        "test": record.get("test"),
        "baselines": record.get("baselines"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="a model folder written by `paprec train`")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (the card the run used)")
    parser.add_argument("--out", type=Path, default=None, help=OUT_HELP)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if not (args.model_dir / "training.json").is_file():
        print(f"{args.model_dir}: no training.json (not a finished `paprec train` model folder)", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    result = report(args.model_dir, device)
    doc = document("train-report", device, {"model_dir": str(args.model_dir)}, result=result)
    path = write_result(doc, args.out, device, suffix=f"-{result['model']}")
    rows = [[e["epoch"], e["examples_per_s"], e["tokens_per_s"], e["achieved_tflops"], e["mfu"]]
            for e in result["epochs"]]
    print_table(f"{result['model']}: {result['parameters']:,} parameters, batch {result['batch_size']}",
                ["epoch", "examples/s", "tokens/s", "TFLOP/s", "MFU"], rows, stream=sys.stderr)
    for task, metrics in (result["test"] or {}).items():
        if "HR@10" not in metrics:  # rating: RMSE / MAE, no ranking baselines
            continue
        base = {name: (result["baselines"] or {}).get(name, {}).get(task, {}) for name in ("popularity", "item_knn")}
        print(f"test {task}: " + ", ".join(
            f"{m} {metrics[m]:.4f} (popularity {base['popularity'].get(m, float('nan')):.4f}, "
            f"item-kNN {base['item_knn'].get(m, float('nan')):.4f})" for m in ("HR@10", "NDCG@10") if m in metrics
        ), file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)
    if args.json:
        emit_json(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
