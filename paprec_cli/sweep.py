"""`paprec sweep`: the search over a grid of prompt lengths and selection criteria (the paper's Figures 3, 4).

Every cell of the grid (`n_suffix` x `n_personal` x `selection`) is an ordinary resumable search run,
written by the search core (`paprec_cli.search.runner`) to `<sweep>/cells/<cell>/`. A cell is finished
when its `cell.json` exists (written atomically after the run's `prompts.json`): it holds the cell's test
metric with a 95% percentile-bootstrap interval over test users and the paired difference to the manual
prompt, computed with the same `paired_bootstrap` as `paprec eval`. Re-running the same sweep skips
finished cells and resumes an interrupted one from its last saved step.

Layout of a sweep folder (default `<home>/sweeps/<task>-<dataset>-<hash of the grid and options>`):

    sweep.json     manifest: format, options, the cells (name, grid values, run folder)
    cells/<cell>/  one search run (manifest.json, trajectory.jsonl, state.json, prompts.json) + cell.json
    summary.csv    one row per cell (written after all cells finished)
    summary.json   the same rows plus the manifest
    sweep.png      test metric vs prompt length per selection criterion, with 95% CIs
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paprec_cli.choices import Init, Selection
from paprec_cli.errors import PaprecError
from paprec_cli.output import Output
from paprec_cli.paths import Home, atomic_path, write_json_atomic
from paprec_cli.progress import heartbeat, log_line, search_progress
from paprec_cli.search.config import SearchConfig

SELECTIONS = Selection.values()

if TYPE_CHECKING:
    from paprec_cli.specs import TaskSpec

SWEEP_FORMAT = "paprec-sweep/1"
MANIFEST, CELL = "sweep.json", "cell.json"
#: Test metrics a sweep can plot, and the per-example value whose per-user mean they are.
RATING_METRICS = {"MAE": "abs_error"}


@dataclass(frozen=True)
class SweepSpec:
    """The grid and the search options shared by every cell (all recorded in `sweep.json`).

    `time_budget` is per cell, in seconds. `metric` is the test metric summarised and plotted (ranking:
    HR@1/5/10, NDCG@5/10; rating: MAE, since RMSE is not a mean of per-user values); `n_boot` bootstrap
    resamples for its intervals.
    """

    task: str
    dataset: str
    model: str | None = None
    n_suffix: tuple[int, ...] = (1, 3, 5)
    n_personal: tuple[int, ...] = (1,)
    selections: tuple[str, ...] = ("surrogate", "loss")
    top_k: int = 5
    val_users: int | None = None
    grad_examples: int = 256
    max_rounds: int = 20
    time_budget: float | None = None
    batch_size: int | None = None
    seed: int = 0
    metric: str | None = None
    n_boot: int = 1000
    #: The T5 tokenizer of a HF T5 folder / P5 `.pth` model (None: the one beside the checkpoint); left out of
    #: `to_json` when None, so the key and manifest of a sweep made before the option existed stay the same.
    tokenizer: str | None = None

    def key(self) -> str:
        """8 hex digits identifying the grid and options (the default folder name's suffix)."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]

    def to_json(self) -> dict[str, Any]:
        obj = asdict(self)
        for name in ("n_suffix", "n_personal", "selections"):
            obj[name] = list(obj[name])
        if obj["tokenizer"] is None:
            del obj["tokenizer"]
        return obj


@dataclass(frozen=True)
class Cell:
    """One point of the grid; `length` is the prompt length the figures use (suffix + personal tokens)."""

    n_suffix: int
    n_personal: int
    selection: str

    @property
    def name(self) -> str:
        return f"suffix{self.n_suffix}-personal{self.n_personal}-{self.selection}"

    @property
    def length(self) -> int:
        return self.n_suffix + self.n_personal


def parse_grid(text: str, option: str) -> tuple[int, ...]:
    """"1,3,5" -> (1, 3, 5); a one-line error naming `option` for anything else (empty, negative, repeated)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise PaprecError(f"{option} {text}: expected comma-separated integers >= 0, e.g. 1,3,5") from None
    if any(v < 0 for v in values) or len(set(values)) != len(values):
        raise PaprecError(f"{option} {text}: expected distinct integers >= 0, e.g. 1,3,5")
    return values


def parse_selections(text: str) -> tuple[str, ...]:
    """"surrogate,loss" -> ("surrogate", "loss"); unknown or repeated names are a one-line error."""
    names = tuple(p.strip() for p in text.split(","))
    bad = [n for n in names if n not in SELECTIONS]
    if bad or len(set(names)) != len(names):
        raise PaprecError(f"--selection {text}: expected distinct names among {', '.join(SELECTIONS)}")
    return names


def cells_of(spec: SweepSpec) -> list[Cell]:
    """The grid in a fixed order: selection criterion, then personal tokens, then suffix length."""
    cells = [Cell(s, p, sel) for sel, p, s in itertools.product(spec.selections, spec.n_personal, spec.n_suffix)]
    empty = [c.name for c in cells if c.length == 0]
    if empty:
        raise PaprecError("--n-suffix/--n-personal: a cell with 0 suffix and 0 personal tokens has no trigger "
                          "token; drop 0 from one of the two grids")
    return cells


def metric_key(metric: str, task: TaskSpec) -> str:
    """The per-example value behind `metric` (one of the task's declared `example_metric_specs`, or a rating
    task's MAE, whose per-example value is `abs_error`); a one-line error naming the choices otherwise."""
    known = {spec.name: spec.name for spec in task.example_metric_specs}
    if task.kind == "rating":
        known.update(RATING_METRICS)
    if metric not in known:
        raise PaprecError(f"--metric {metric}: not a per-user test metric of task '{task.name}'; "
                          f"use one of {', '.join(known)}")
    return known[metric]


def default_metric(task: TaskSpec) -> str:
    """NDCG@10 where the task declares it (the paper's figures), MAE for a rating task, else the task's
    primary metric when it is per-example, else its first per-example metric."""
    names = [spec.name for spec in task.example_metric_specs]
    if "NDCG@10" in names:
        return "NDCG@10"
    if task.kind == "rating":
        return "MAE"
    return task.primary_metric if task.primary_metric in names else names[0]


def default_folder(home: Home, spec: SweepSpec) -> Path:
    return home.root / "sweeps" / f"{spec.task}-{spec.dataset}-{spec.key()}"


# -- the sweep ---------------------------------------------------------------------------------------
def run_sweep(spec: SweepSpec, home: Home, out: Output, device: str, folder: Path | None = None,
              plot: bool = True) -> dict[str, Any]:
    """Run (or continue) every cell of `spec`, then write the summary table (CSV, JSON) and the plot.

    Returns `{"sweep", "manifest", "csv", "json", "plot", "metric", "cells": [row, ...]}`; each row
    carries the cell's grid values, `status` (ran, resumed, or skipped: finished by an earlier run), the
    test metric `value` of the personalized prompt with `ci_low`/`ci_high`, the manual prompt's value and
    the paired difference.
    Raises PaprecError for bad options, a folder holding another sweep, or missing matplotlib (checked
    before any cell runs); Ctrl-C / SIGTERM keep finished cells and the current cell's saved steps.
    """
    from paprec_cli.plugins import load_registry
    from paprec_cli.registry import default_model

    registry = load_registry()
    task = registry.task(spec.task)
    metric = spec.metric or default_metric(task)
    key = metric_key(metric, task)
    if spec.n_boot < 1:
        raise PaprecError(f"--n-boot {spec.n_boot}: expected an integer >= 1")
    cells = cells_of(spec)
    for cell in cells:  # every option error before the first cell runs
        _config(spec, cell, "unchecked")  # SearchConfig validates itself
    if plot:
        from paprec_cli.plots import new_figure

        new_figure(1, 1)  # matplotlib present? (a one-line error naming paprec[plot] otherwise)
    model = spec.model or default_model(home, spec.dataset)
    folder = Path(folder) if folder is not None else default_folder(home, spec)
    created = not (folder / MANIFEST).is_file()
    new_folder = not folder.exists()
    manifest = _open_manifest(folder, spec, cells)
    out.info(f"Sweep folder: {folder} ({len(cells)} cells, test {metric})")
    rows = []
    with _sigterm_as_interrupt():
        try:
            for number, cell in enumerate(cells, start=1):
                rows.append(_run_cell(spec, cell, folder, model, home, out, device, key, metric,
                                      f"cell {number}/{len(cells)} {cell.name}"))
        except KeyboardInterrupt:
            sys.stderr.write(f"Interrupted; finished cells are kept. Re-run the same command (or pass --out "
                             f"{folder}) to resume.\n")
            raise
        except PaprecError:
            if created:  # e.g. a model that does not load: leave no sweep behind that would refuse the fixed options
                _forget_unstarted(folder, new_folder)
            raise
    paths = write_summary(folder, manifest, rows, metric, plot)
    return {"sweep": str(folder), "manifest": str(folder / MANIFEST), **paths, "metric": metric, "cells": rows}


def _config(spec: SweepSpec, cell: Cell, model: str) -> SearchConfig:
    return SearchConfig(task=spec.task, dataset=spec.dataset, model=model, n_prefix=0, n_suffix=cell.n_suffix,
                        init=Init.RANDOM, n_personal=cell.n_personal, top_k=spec.top_k, val_users=spec.val_users,
                        grad_examples=spec.grad_examples, max_rounds=spec.max_rounds, time_budget=spec.time_budget,
                        selection=Selection.parse(cell.selection, "--selection"), batch_size=spec.batch_size,
                        seed=spec.seed, tokenizer=spec.tokenizer)


def _open_manifest(folder: Path, spec: SweepSpec, cells: Sequence[Cell]) -> dict[str, Any]:
    """Create `sweep.json`, or check that the existing one records the same grid and options."""
    manifest = {"format": SWEEP_FORMAT, "spec": spec.to_json(), "key": spec.key(),
                "cells": [{"name": c.name, **asdict(c), "length": c.length, "run": f"cells/{c.name}"} for c in cells]}
    path = folder / MANIFEST
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise PaprecError(f"{path}: unreadable sweep manifest ({exc}); use another --out") from None
        if recorded.get("key") != manifest["key"] or recorded.get("spec") != manifest["spec"]:
            raise PaprecError(f"--out {folder}: holds a sweep with other options (see {path}); "
                              "pass the same options to resume it, or another --out")
        return manifest
    if folder.exists() and any(folder.iterdir()):
        raise PaprecError(f"--out {folder}: exists and is not a sweep folder (no {MANIFEST}); use another --out")
    write_json_atomic(path, manifest)
    return manifest


def _forget_unstarted(folder: Path, remove_folder: bool) -> None:
    """Remove the `sweep.json` this run wrote if no cell has started (and the folder, when this run made it
    and it is empty)."""
    cells = folder / "cells"
    if cells.is_dir() and any(cells.iterdir()):
        return
    (folder / MANIFEST).unlink(missing_ok=True)
    if cells.is_dir():
        cells.rmdir()
    if remove_folder and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _run_cell(spec: SweepSpec, cell: Cell, folder: Path, model: str, home: Home, out: Output, device: str,
              key: str, metric: str, label: str) -> dict[str, Any]:
    from paprec_cli.plugins import load_registry
    from paprec_cli.search import runner
    from paprec_cli.search.rundir import RunDir

    path = folder / "cells" / cell.name
    done = path / CELL
    if done.is_file():
        row = json.loads(done.read_text(encoding="utf-8"))
        log_line(out.err, f"{label}: finished before, skipped")
        return {**row, "status": "skipped"}
    if (path / "manifest.json").is_file():
        run, recorded, state = RunDir.open_for_resume(path)
        session = runner.prepare(SearchConfig.from_json(recorded["config"]), load_registry(), home, device,
                                 note=out.debug)
        runner.check_resumable(session, recorded)
        status = "resumed"
        log_line(out.err, f"{label}: resuming at step {state.steps if state else 0}")
    else:
        session = runner.prepare(_config(spec, cell, model), load_registry(), home, device, note=out.debug)
        run, state, status = RunDir.create(path, runner.manifest(session)), None, "ran"
        log_line(out.err, f"{label}: running")
    layout = session.config.layout
    per_round = layout.n_shared + (1 if layout.n_personal else 0)
    with search_progress(out, per_round, spec.max_rounds, spec.time_budget) as observe:
        state = runner.search(session, run, state, observe)
    with heartbeat(out.err, f"{label}: evaluating"):
        doc, details = runner.finalize_with_details(session, run, state)
    row = cell_row(cell, doc, details, key, metric, spec.n_boot, spec.seed)
    row["verdict"] = verdict(row)
    write_json_atomic(done, row)
    log_line(out.err, f"{label}: test {metric} {row['value']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}] "
                      f"(manual {row['manual']:.4f}), {row['seconds']:.1f}s")
    return {**row, "status": status}


def cell_row(cell: Cell, doc: dict[str, Any], details: Any, key: str, metric: str, n_boot: int,
             seed: int) -> dict[str, Any]:
    """One summary row: the personalized prompt's test `metric` (mean over test users, 95% percentile
    bootstrap CI), the manual and shared prompts' values, and personalized - manual paired per user.

    `details` is `{variant: {part: PerExample}}` from `evaluate_prompts`; values are per-user means of the
    per-example `key` (HR@k / NDCG@k; abs_error for MAE), paired on users every variant was scored on.
    """
    from paprec_cli.metrics import paired_bootstrap

    by = {v: details[v]["test"].by_user(key) for v in ("manual", "shared", "personalized")}
    users = sorted(set(by["manual"]) & set(by["shared"]) & set(by["personalized"]))
    values = {v: np.asarray([by[v][u] for u in users], dtype=np.float64) for v in by}
    zeros = np.zeros(len(users))
    own = paired_bootstrap(values["personalized"], zeros, n_boot=n_boot, seed=seed)
    manual = paired_bootstrap(values["manual"], zeros, n_boot=n_boot, seed=seed)
    diff = paired_bootstrap(values["personalized"], values["manual"], n_boot=n_boot, seed=seed)
    search = doc.get("search") or {}
    return {
        "cell": cell.name, "n_suffix": cell.n_suffix, "n_personal": cell.n_personal, "selection": cell.selection,
        "length": cell.length, "metric": metric, "value": own["mean_diff"], "ci_low": own["ci_low"],
        "ci_high": own["ci_high"], "manual": manual["mean_diff"], "manual_ci_low": manual["ci_low"],
        "manual_ci_high": manual["ci_high"], "shared": float(values["shared"].mean()) if users else math.nan,
        "diff_vs_manual": diff["mean_diff"], "diff_ci_low": diff["ci_low"], "diff_ci_high": diff["ci_high"],
        "users": len(users), "surrogate": (doc.get("surrogate") or {}).get("personalized"),
        "stop_reason": search.get("stop_reason"), "rounds": search.get("rounds"),
        "seconds": float(search.get("seconds") or 0.0), "run": f"cells/{cell.name}",
    }  # fmt: skip


COLUMNS = ("cell", "selection", "n_suffix", "n_personal", "length", "metric", "value", "ci_low", "ci_high",
           "manual", "manual_ci_low", "manual_ci_high", "shared", "diff_vs_manual", "diff_ci_low", "diff_ci_high",
           "verdict", "users", "surrogate", "stop_reason", "rounds", "seconds", "run", "status")


def write_summary(folder: Path, manifest: dict[str, Any], rows: Sequence[dict[str, Any]], metric: str,
                  plot: bool) -> dict[str, str | None]:
    """summary.csv, summary.json and (with `plot`) sweep.png, each written atomically."""
    import polars as pl

    frame = pl.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], infer_schema_length=None)
    with atomic_path(folder / "summary.csv") as tmp:
        frame.write_csv(tmp)
    write_json_atomic(folder / "summary.json", {"format": SWEEP_FORMAT, "manifest": manifest, "metric": metric,
                                                 "cells": [_jsonable(r) for r in rows]})
    image = None
    if plot:
        from paprec_cli.plots import save, sweep_figure

        spec = manifest["spec"]
        title = (f"{spec['task']} on {spec['dataset']}: seed {spec['seed']}, {spec['max_rounds']} round(s) max, "
                 f"{rows[0]['users'] if rows else 0} test users")
        image = str(save(sweep_figure(rows, metric, title), folder / "sweep.png"))
    return {"csv": str(folder / "summary.csv"), "json": str(folder / "summary.json"), "plot": image}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a batch system's stop) behaves like Ctrl-C: the running cell's saved steps are kept."""

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (e.g. some test runners): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def verdict(row: dict[str, Any]) -> str:
    """"better" / "worse" than the manual prompt when the paired 95% CI excludes 0, else "noise"."""
    low, high = row.get("diff_ci_low"), row.get("diff_ci_high")
    if not (isinstance(low, float) and isinstance(high, float) and math.isfinite(low) and math.isfinite(high)):
        return "no data"
    if low <= 0 <= high:
        return "noise"
    lower_is_better = row.get("metric") in RATING_METRICS
    return "better" if (high < 0 if lower_is_better else low > 0) else "worse"


def summary_table(result: dict[str, Any]) -> Any:
    """The sweep's rows as a rich Table: one row per cell, the test metric with its 95% CI, the paired
    difference to the manual prompt and its verdict; the manual prompt's value in the caption."""
    from rich.table import Table

    metric, rows = result["metric"], result["cells"]
    table = Table(title=f"sweep: test {metric} of the personalized prompt, 95% bootstrap CI over users")
    for name in ("selection", "suffix", "personal", metric, "95% CI", "- manual", "verdict", "status"):
        table.add_column(name, justify="left" if name in ("selection", "verdict", "status") else "right")
    for row in rows:
        table.add_row(row["selection"], str(row["n_suffix"]), str(row["n_personal"]), _num(row["value"]),
                      f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]", _signed(row["diff_vs_manual"]),
                      verdict(row), row.get("status", ""))
    if rows:
        first = rows[0]
        table.caption = (f"manual prompt: {metric} {_num(first['manual'])} [{_num(first['manual_ci_low'])}, "
                         f"{_num(first['manual_ci_high'])}] on {first['users']} test users; verdict: paired 95% "
                         "CI of the difference excludes 0 (better/worse) or not (noise)")
    return table


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _signed(value: Any) -> str:
    return f"{value:+.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"
