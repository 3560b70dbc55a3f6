"""Shared helpers for the benchmarks in `bench/`: machine facts, timing, peak memory, tables, JSON.

Every benchmark script writes one JSON document with the same top-level shape:
`{"benchmark", "created", "machine", "settings", "sizes", "results", ...}`. `machine` names the host, CPU,
cores, torch/transformers versions, the device and, on a GPU, the card's name, CUDA version and dense
bf16 peak (for FLOP utilisation). Result files are named `<benchmark>-<machine tag>.json` (e.g.
`surrogate-cpu-2core.json`, `search-h100.json`) in `--out DIR`, `$PAPREC_BENCH_OUT`, or else a temporary
folder (printed); pass `--out bench/results` to update the committed figures.

Scripts import this module as `from common import ...` (Python puts the script's folder on sys.path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
OUT_ENV = "PAPREC_BENCH_OUT"
OUT_HELP = f"results folder (default ${OUT_ENV}, else a temporary folder; bench/results to commit)"
T = TypeVar("T")

#: Dense (no sparsity) bf16 tensor-core peak in TFLOP/s, matched on the CUDA device name (first hit wins).
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)


# -- command line ------------------------------------------------------------------------------------
def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--quick, --json, --device, --out, --home: every benchmark takes these."""
    parser.add_argument("--quick", action="store_true", help="a smoke-sized run (under a minute on 2 CPU cores)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--out", type=Path, default=None, help=OUT_HELP)
    parser.add_argument("--home", type=Path, default=None, help="paprec home to read data/models from")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine")
    return device


# -- machine -----------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def bf16_peak_tflops(device_name: str) -> float | None:
    for key, peak in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "-uno"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where the numbers come from (recorded in every result file)."""
    import transformers

    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "device": str(device),
        "device_name": cpu_model() if device.type == "cpu" else torch.cuda.get_device_name(device),
        "git": git_revision(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            cuda=torch.version.cuda,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            bf16_supported=torch.cuda.is_bf16_supported(),
            bf16_peak_tflops=bf16_peak_tflops(props.name),
        )
    return info


def machine_tag(device: torch.device) -> str:
    """Short name for result files: `cpu-2core`, `h100`, `h200`, or the card's name."""
    if device.type == "cpu":
        return f"cpu-{usable_cores()}core"
    name = torch.cuda.get_device_name(device)
    for key in ("H200", "H100", "A100", "L40S", "L4", "A10"):
        if key.lower() in name.lower():
            return key.lower()
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


# -- timing and memory -------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def stopwatch(device: torch.device) -> Iterator[list[float]]:
    """`with stopwatch(dev) as t: ...` then `t[0]` is the elapsed seconds (device work included)."""
    box: list[float] = [0.0]
    sync(device)
    start = time.perf_counter()
    try:
        yield box
    finally:
        sync(device)
        box[0] = time.perf_counter() - start


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """(fn(), seconds), synchronising the device before and after."""
    with stopwatch(device) as t:
        result = fn()
    return result, t[0]


def measure(fn: Callable[[], T], device: torch.device) -> tuple[T, float, float]:
    """(fn(), wall seconds, process CPU seconds). CPU seconds (all threads) are robust to other jobs on
    a shared machine; wall seconds are what a user waits."""
    cpu = time.process_time()
    result, wall = timed(fn, device)
    return result, wall, time.process_time() - cpu


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """Peak resident memory of this process (MiB, from getrusage) and peak CUDA memory allocated (MiB)."""
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"peak_rss_mib": round(rss_kib / 1024, 1), "peak_cuda_mib": None if cuda is None else round(cuda, 1)}


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of log(y) on log(x): cost ~ x^slope (1.0 = linear). None with < 2 points."""
    import math

    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    num = sum((p[0] - mx) * (p[1] - my) for p in pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return round(num / den, 3)


# -- output ------------------------------------------------------------------------------------------
def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, stream: Any = None) -> None:
    """A rich table when rich is installed, else aligned plain text (to stderr under --json)."""
    stream = stream or sys.stdout
    cells = [[_fmt(v) for v in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print(title, file=stream)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=stream)
        for row in cells:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=stream)
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in cells:
        table.add_row(*row)
    Console(file=stream, width=140).print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "nan"
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return "-" if value is None else str(value)


def say(message: str) -> None:
    """Progress notes go to stderr, so `--json`'s last stdout line stays the result."""
    print(message, file=sys.stderr, flush=True)


_TEMP_RESULTS: list[Path] = []


def results_dir(out: Path | None) -> Path:
    """`--out`, else `$PAPREC_BENCH_OUT`, else a fresh temporary folder (one per process), so that a run
    never rewrites the tracked files under bench/results/ unless asked to (`--out bench/results`)."""
    if out is None and os.environ.get(OUT_ENV):
        out = Path(os.environ[OUT_ENV])
    if out is None:
        if not _TEMP_RESULTS:
            _TEMP_RESULTS.append(Path(tempfile.mkdtemp(prefix="paprec-bench-results-")))
        return _TEMP_RESULTS[0]
    out.mkdir(parents=True, exist_ok=True)
    return out


def document(benchmark: str, device: torch.device, settings: dict[str, Any], **parts: Any) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(device),
        "settings": settings,
        **parts,
    }


def write_result(doc: dict[str, Any], out: Path | None, device: torch.device, suffix: str = "") -> Path:
    """Write `<benchmark>-<machine tag><suffix>.json` atomically; returns its path."""
    path = results_dir(out) / f"{doc['benchmark']}-{machine_tag(device)}{suffix}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def emit_json(doc: dict[str, Any]) -> None:
    """The `--json` contract: one object, the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(doc, separators=(",", ":")), flush=True)


# -- paprec fixtures: home, dataset, model -----------------------------------------------------------
#: Real data (beauty, sports): `$PAPREC_SHARED_DATA`, else `shared/data` in the repo, else `../shared/data`.
SHARED_DATA = Path(
    os.environ.get("PAPREC_SHARED_DATA")
    or next((p for p in (REPO / "shared" / "data", REPO.parent / "shared" / "data") if p.is_dir()),
            REPO.parent / "shared" / "data")
)
#: Where a benchmark trains its own tiny model when none is found (kept between runs).
SCRATCH_HOME = Path(os.environ.get("TMPDIR", "/tmp")) / "paprec-bench-home"


def open_home(path: Path | None) -> Any:
    from paprec_cli.paths import Home

    return Home.resolve(path)


def ensure_dataset(home: Any, name: str, registry: Any) -> Any:
    """The imported dataset; `synthetic` is generated and `beauty`/`sports` come from ../shared/data."""
    from paprec_cli.data.store import dataset_exists, import_dataset, load_dataset

    if not dataset_exists(home, name):
        source = None if name == "synthetic" else SHARED_DATA / name
        if source is not None and not source.exists():
            raise SystemExit(f"dataset '{name}' is not imported in {home.root} and {source} does not exist")
        say(f"importing dataset '{name}' into {home.dataset_dir(name)}")
        import_dataset(registry.dataset(name), source, home)
    return load_dataset(home, name)


def random_model(dataset: Any, registry: Any, size: str, ids: str, seed: int = 0) -> Any:
    """A freshly initialised model of `size` with a codec trained on the dataset and every task's wording
    (what `paprec train` would start from): fine for speed, meaningless for prompt quality."""
    from paprec_cli.model import build_codec, create_model
    from paprec_cli.training.words import AUX_TEXTS

    texts = [t.source for entry in registry.tasks.values() for t in entry.spec.templates] + list(AUX_TEXTS)
    codec = build_codec(dataset, ids, texts)  # type: ignore[arg-type]
    bundle = create_model(size, codec, seed)
    bundle.model.eval()
    return bundle


def find_model(homes: Sequence[Any], name: str) -> tuple[Any, Path] | None:
    """(home, model folder) of the first home holding `models/<name>/config.json`."""
    for home in homes:
        folder = home.model_dir(name)
        if (folder / "config.json").is_file():
            return home, folder
    return None


def train_model(home: Any, dataset: str, size: str, ids: str, budget: float, device: torch.device) -> Path:
    """Train `<dataset>-<size>-<ids>` with the CLI (`paprec train --time-budget`) into `home`."""
    cmd = [sys.executable, "-m", "paprec_cli", "train", "--dataset", dataset, "--size", size, "--ids", ids,
           "--time-budget", str(budget), "--home", str(home.root), "--device", str(device), "--quiet"]
    say(f"no trained {dataset}-{size}-{ids} model found: training one ({' '.join(cmd[2:])})")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return Path(home.model_dir(f"{dataset}-{size}-{ids}"))
