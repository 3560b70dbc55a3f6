"""Speed-up of `torchrun --nproc-per-node 2` over one process on the same work (search and training).

    python bench/distributed.py [--quick] [--json] [--device cpu|cuda] [--processes 2]

Both runs do identical work: a search with a fixed round count (so the same steps; the bench also checks
that both accept the same tokens) and one training epoch of the same global batches. On the CPU every
process gets one thread (OMP_NUM_THREADS=1), so "2 processes" means 2 cores; the 1-process baseline with
as many threads as processes is measured too, since that is what a user without torchrun would get.
Times are the commands' own search / training seconds (start-up and final evaluation excluded) and the
wall time of the whole command. On a shared 2-core machine other processes compete: read the numbers as
what this machine gave at that moment, not as a property of the code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import add_common_args, document, emit_json, print_table, resolve_device, say, write_result

TORCHRUN = Path(sys.executable).parent / "torchrun"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_home(root: Path, users: int) -> None:
    """Synthetic data and a random tiny model saved as `synthetic-tiny-atomic` (speed only)."""
    from common import random_model

    from paprec_cli.data.store import import_dataset, load_dataset
    from paprec_cli.model import save_model
    from paprec_cli.paths import Home
    from paprec_cli.plugins import load_registry
    from paprec_cli.specs import ImportOptions

    home = Home.resolve(root)
    registry = load_registry()
    extra = {"users": str(users), "items": str(max(30, users // 2)), "categories": "8", "length": "12"}
    import_dataset(registry.dataset("synthetic"), None, home, options=ImportOptions(seed=0, extra=extra))
    bundle = random_model(load_dataset(home, "synthetic"), registry, "tiny", "atomic")
    save_model(bundle, home.model_dir("synthetic-tiny-atomic"))


def run(args: list[str], processes: int, threads: int, device: str) -> tuple[dict[str, Any], float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PAPREC_DIST_TIMEOUT": "600"}
    if processes == 1:
        cmd = [sys.executable, "-m", "paprec_cli", *args, "--device", device]
    else:
        cmd = [str(TORCHRUN), "--nproc-per-node", str(processes), "--master-port", str(free_port()),
               "-m", "paprec_cli", *args, "--device", device]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--processes", type=int, default=2, help="processes of the torchrun run (default 2)")
    opts = parser.parse_args()
    device = resolve_device(opts.device)
    if not TORCHRUN.exists() and shutil.which("torchrun") is None:
        raise SystemExit("torchrun not found next to this Python; install torch into this environment")
    n = opts.processes
    users = 60 if opts.quick else 200
    settings = {"processes": n, "users": users, "quick": opts.quick, "device": str(device),
                "search": {"val_users": users, "max_rounds": 1, "grad_examples": 64 if opts.quick else 256,
                           "batch_size": 64, "top_k": 5, "n_suffix": 3, "n_personal": 1, "selection": "loss"},
                "train": {"epochs": 1, "batch_size": 32, "tasks": "sequential", "size": "tiny", "dropout": 0.0}}
    configs = [(1, 1), (n, 1)] if opts.quick or device.type == "cuda" else [(1, 1), (1, n), (n, 1)]
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="paprec-bench-dist-") as tmp:
        root = Path(tmp) / "home"
        say(f"preparing synthetic data ({users} users) and a random tiny model in {root}")
        prepare_home(root, users)
        s = settings["search"]
        search_args = ["search", "--task", "sequential", "--dataset", "synthetic", "--home", str(root), "--json",
                       "--val-users", str(s["val_users"]), "--max-rounds", "1", "--grad-examples",
                       str(s["grad_examples"]), "--batch-size", "64", "--top-k", "5", "--n-suffix", "3",
                       "--n-personal", "1", "--selection", "loss", "--seed", "0", "--quiet"]
        train_args = ["train", "--dataset", "synthetic", "--tasks", "sequential", "--size", "tiny", "--epochs", "1",
                      "--batch-size", "32", "--dropout", "0", "--val-users", "10", "--home", str(root), "--json",
                      "--quiet"]
        prompts: dict[str, Any] = {}
        for processes, threads in configs:
            label = f"{processes} process(es) x {threads} thread(s)"
            say(f"search: {label}")
            run_dir = Path(tmp) / f"run-{processes}-{threads}"
            out, wall = run([*search_args, "--run-dir", str(run_dir)], processes, threads, str(device))
            doc = json.loads((run_dir / "prompts.json").read_text())
            prompts[label] = {"shared": doc["shared"], "personal": doc["personal"]}
            search = {"work": "search", "processes": processes, "threads": threads, "seconds": out["seconds"],
                      "wall_seconds": round(wall, 2)}
            say(f"train: {label}")
            name = f"bench-{processes}-{threads}"
            out, wall = run([*train_args, "--name", name], processes, threads, str(device))
            record = json.loads((root / "models" / name / "training.json").read_text())
            first = record["history"][0]
            train = {"work": "train", "processes": processes, "threads": threads, "seconds": first["train_seconds"],
                     "wall_seconds": round(wall, 2), "loss": first["loss"], "steps": first["steps"]}
            results += [search, train]
    base = {r["work"]: r["seconds"] for r in results if r["processes"] == 1 and r["threads"] == 1}
    for r in results:
        r["speedup_vs_1x1"] = round(base[r["work"]] / r["seconds"], 3) if r["seconds"] else None
        rows.append([r["work"], r["processes"], r["threads"], r["seconds"], r["wall_seconds"], r["speedup_vs_1x1"]])
    labels = list(prompts)
    same = all(prompts[label] == prompts[labels[0]] for label in labels)
    print_table("1 vs several processes on the same work", ["work", "processes", "threads", "seconds",
                                                            "wall s", "speed-up"], rows, stream=sys.stderr)
    say(f"same prompts in every configuration: {same}; machine cores: {os.cpu_count()}")
    doc = document("distributed", device, settings, results=results, same_prompts=same,
                   note="seconds: the command's own search / training time; wall: the whole command, start-up "
                        "and final evaluation included. Other processes may share this machine's cores.")
    path = write_result(doc, opts.out, device, suffix="-quick" if opts.quick else "")
    say(f"wrote {path}")
    if opts.json:
        emit_json(doc)


if __name__ == "__main__":
    main()
