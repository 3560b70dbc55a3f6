"""Figures through matplotlib (the optional extra `paprec[plot]`): a search's trajectory and a sweep.

matplotlib is imported only here and only when a figure is drawn; without it every entry point raises
a one-line `PaprecError` naming `pip install 'paprec[plot]'`. Figures are drawn on an Agg canvas
(no display, no global pyplot state) and written atomically (temporary file, then rename).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paprec_cli.errors import PaprecError
from paprec_cli.paths import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: File suffixes matplotlib writes without extra software.
FORMATS = (".png", ".pdf", ".svg")
INSTALL = "pip install 'paprec[plot]'"


def new_figure(width: float, height: float) -> Figure:
    """An empty matplotlib figure on the Agg canvas; a one-line error when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PaprecError(f"plotting needs matplotlib, which is not installed; install it with {INSTALL}") from None
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def check_output(path: Path) -> Path:
    """`path` if its suffix is one matplotlib writes (.png, .pdf, .svg), else a one-line error."""
    if path.suffix.lower() not in FORMATS:
        raise PaprecError(f"-o {path}: unknown image type '{path.suffix}'; use a .png, .pdf or .svg file name")
    return path


def save(figure: Figure, path: Path) -> Path:
    """Write `figure` to `path` atomically; the format follows the suffix."""
    check_output(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=path.suffix.lower().lstrip("."))
    return path


# -- one search --------------------------------------------------------------------------------------
def read_trajectory(run: Path) -> tuple[dict[str, Any], list[dict[str, Any]], float | None]:
    """(manifest config, trajectory steps, initial surrogate) of a run folder (finished or not).

    Raises PaprecError when the folder has no manifest or no finished step yet.
    """
    from paprec_cli.search.rundir import RunDir

    folder = RunDir(run)
    if not (run / "manifest.json").is_file():
        raise PaprecError(f"{run}: not a paprec run directory (no manifest.json)")
    steps = [s for s in folder.trajectory() if s]
    state = folder.load_state()
    if state is not None:
        steps = steps[: state.steps]
    if not steps:
        raise PaprecError(f"{run}: the search has not finished a step yet; nothing to plot")
    initial = state.initial_value if state is not None else None
    return folder.manifest().get("config", {}), steps, initial


def trajectory_figure(config: dict[str, Any], steps: Sequence[dict[str, Any]], initial: float | None) -> Figure:
    """Surrogate after every step against cumulative wall time (s, top) and step number (bottom).

    Shared steps are dots (filled and green when a flip was accepted); personal phases are shaded with
    the number of users whose token changed; round boundaries are dotted lines.
    """
    figure = new_figure(8.0, 4.5)
    axes = figure.add_subplot()
    wall = []
    total = 0.0
    for step in steps:
        total += float(step.get("seconds") or 0.0)
        wall.append(total)
    numbers = list(range(1, len(steps) + 1))
    values = [float(s["surrogate"]) for s in steps]
    xs = ([0] if initial is not None else []) + numbers
    ys = ([initial] if initial is not None else []) + values
    axes.plot(xs, ys, color="#1f77b4", linewidth=1.5, label="surrogate after the step", zorder=2)
    for number, step, value in zip(numbers, steps, values, strict=True):
        if step.get("kind") == "personal":
            axes.axvspan(number - 0.5, number + 0.5, color="#ff7f0e", alpha=0.18, linewidth=0, zorder=0)
            axes.annotate(f"{step.get('changed', 0)} users", (number, value), textcoords="offset points",
                          xytext=(0, 8), ha="center", fontsize=7, color="#b35806")
        else:
            accepted = step.get("accepted") is not None
            axes.scatter([number], [value], s=36 if accepted else 14, zorder=3,
                         color="#2ca02c" if accepted else "#7f7f7f", marker="^" if accepted else "o")
            if accepted:
                axes.annotate(str(step["accepted"].get("text", "")), (number, value), textcoords="offset points",
                              xytext=(0, -12), ha="center", fontsize=7, color="#2ca02c")
    rounds = [int(s.get("round", 0)) for s in steps]
    for i in range(1, len(rounds)):
        if rounds[i] != rounds[i - 1]:
            axes.axvline(i + 0.5, color="#999999", linestyle=":", linewidth=0.8, zorder=1)
    # legend proxies
    axes.scatter([], [], s=36, color="#2ca02c", marker="^", label="shared flip accepted")
    axes.scatter([], [], s=14, color="#7f7f7f", marker="o", label="shared step, no flip")
    axes.fill_between([], [], color="#ff7f0e", alpha=0.18, label="personal phase (users changed)")
    axes.set_xlabel("step (dotted lines: rounds)")
    axes.set_ylabel(f"validation surrogate ({config.get('selection', 'surrogate')} selection)")
    axes.set_xlim(-0.5 if initial is not None else 0.5, len(steps) + 0.5)
    top = axes.secondary_xaxis("top", functions=(_interp(numbers, wall), _interp(wall, numbers)))
    top.set_xlabel("wall time (s)")
    title = f"{config.get('task', '?')} on {config.get('dataset', '?')}: {len(steps)} steps, {max(rounds)} round(s)"
    axes.set_title(title, fontsize=10)
    axes.legend(loc="lower right", fontsize=7)
    axes.grid(alpha=0.3)
    return figure


def _interp(xp: Sequence[float], fp: Sequence[float]) -> Any:
    """Monotone piecewise-linear map for a secondary axis (step number <-> wall time)."""
    import numpy as np

    x = np.concatenate([[0.0], np.asarray(xp, dtype=float)])
    f = np.concatenate([[0.0], np.asarray(fp, dtype=float)])
    if np.any(np.diff(x) <= 0):  # zero-length steps: keep the map monotone
        x = x + np.arange(x.size) * 1e-9
    return lambda v: np.interp(v, x, f)


def plot_run(run: Path, output: Path | None = None) -> dict[str, Any]:
    """Draw a run's trajectory to `output` (default `<run>/trajectory.png`).

    Returns `{"run", "path", "steps", "seconds"}`; errors (no run, no step, no matplotlib, an unknown
    suffix) are one-line `PaprecError`s, and nothing is written then.
    """
    target = check_output(output if output is not None else run / "trajectory.png")
    config, steps, initial = read_trajectory(run)
    save(trajectory_figure(config, steps, initial), target)
    seconds = sum(float(s.get("seconds") or 0.0) for s in steps)
    return {"run": str(run), "path": str(target), "steps": len(steps), "seconds": round(seconds, 2)}


# -- sweeps ------------------------------------------------------------------------------------------
def sweep_figure(rows: Sequence[dict[str, Any]], metric: str, title: str) -> Figure:
    """Test `metric` against prompt length, one line per selection criterion (and per personal-token
    count when that varies), with 95% bootstrap CIs as error bars; the manual prompt's value is a dashed
    reference line. Each row is one sweep cell: `{"length", "selection", "n_personal", "value", "ci_low",
    "ci_high", "manual"}` (the paper's Figures 3 and 4)."""
    figure = new_figure(6.4, 4.2)
    axes = figure.add_subplot()
    personal = sorted({int(r.get("n_personal", 0)) for r in rows})

    def series(row: dict[str, Any]) -> str:
        label = f"{row['selection']} selection"
        return label if len(personal) == 1 else f"{label}, {row['n_personal']} personal"

    names = sorted({series(r) for r in rows})
    offsets = {c: (i - (len(names) - 1) / 2) * 0.08 for i, c in enumerate(names)}
    for name in names:
        cells = sorted((r for r in rows if series(r) == name and _finite(r["value"])), key=lambda r: r["length"])
        if not cells:
            continue
        xs = [r["length"] + offsets[name] for r in cells]
        ys = [r["value"] for r in cells]
        low = [max(r["value"] - r["ci_low"], 0.0) if _finite(r["ci_low"]) else 0.0 for r in cells]
        high = [max(r["ci_high"] - r["value"], 0.0) if _finite(r["ci_high"]) else 0.0 for r in cells]
        axes.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, linewidth=1.4, label=name)
    manual = [r["manual"] for r in rows if _finite(r.get("manual"))]
    if manual:
        axes.axhline(manual[0], color="#555555", linestyle="--", linewidth=1, label="manual prompt")
    lengths = sorted({int(r["length"]) for r in rows})
    axes.set_xticks(lengths)
    axes.set_xlabel("prompt length (shared suffix tokens + personal tokens)")
    axes.set_ylabel(f"test {metric} (95% bootstrap CI over users)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def is_png(path: Path) -> bool:
    """True when `path` starts with the PNG signature (for tests and checks)."""
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89PNG\r\n\x1a\n"



