"""Paired comparisons of automatic vs manual prompts: per-user bootstrap differences and their verdicts.

A gain of automatic over manual prompts is only reported as a gain when the 95% paired bootstrap
interval of the per-user difference excludes 0; otherwise the verdict says the difference is noise.
Source of the interval: `paprec_cli.metrics.paired_bootstrap` (percentile bootstrap over users).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paprec_cli.evaluate import Details

#: One interval: {"mean_diff", "ci_low", "ci_high", "n"} (see `metrics.paired_bootstrap`).
Interval = Mapping[str, float]
#: {comparison: {value: Interval}}.
Paired = dict[str, dict[str, dict[str, float]]]


def paired_differences(details: Details, part: str, n_boot: int, seed: int) -> Paired:
    """`{comparison: {value: {"mean_diff","ci_low","ci_high","n"}}}`: variant minus baseline, per user.

    Comparisons are `references.comparisons`: every variant (shared, personalized, references) minus
    manual, then personalized minus each reference. Values are the surrogate and every per-example metric,
    averaged per user first (a rating user has several test examples), and paired on the users both
    variants were evaluated on.
    """
    from paprec_cli.metrics import paired_bootstrap
    from paprec_cli.references import comparisons

    out: Paired = {}
    for name, (variant, baseline) in comparisons(details).items():
        auto, manual = details[variant].get(part), details[baseline].get(part)
        out[name] = {}
        if manual is None or auto is None or len(manual.users) == 0:
            continue
        for key in ("surrogate", *manual.metrics):
            mine, theirs = auto.by_user(key), manual.by_user(key)
            users = sorted(set(mine) & set(theirs))
            out[name][key] = paired_bootstrap(
                [mine[u] for u in users], [theirs[u] for u in users], n_boot=n_boot, seed=seed, alpha=0.05
            )
    return out


#: Below this many paired users a percentile bootstrap interval is not a measurement (one user gives a zero-width
#: interval around their own difference): the verdict is "too few users" (`paprec eval --users N` with a small N).
MIN_PAIRED_USERS = 10


def verdict(stats: Interval, smaller: bool = False) -> str:
    """One word for one interval: "better" / "worse" than manual, "noise" when the CI includes 0, "too few users"
    below `MIN_PAIRED_USERS` paired users.

    `smaller` is the value's direction as its task declares it (`TaskSpec.metric(key).smaller`)."""
    low, high = stats.get("ci_low"), stats.get("ci_high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "no data"
    n = stats.get("n")
    if n is not None and n < MIN_PAIRED_USERS:
        return "too few users"
    if low <= 0 <= high:
        return "noise"
    better = (high < 0) if smaller else (low > 0)
    return "better" if better else "worse"


def summary(paired: Paired) -> list[str]:
    """Plain sentences on the surrogate difference of each comparison, so noise is not sold as a gain."""
    lines = []
    for name, per_key in paired.items():
        stats = per_key.get("surrogate")
        if not stats:
            continue
        word = verdict(stats)  # the surrogate: higher is better
        what, baseline = name.split("_vs_", 1)
        interval = f"{_signed(stats['ci_low'])} to {_signed(stats['ci_high'])}"
        if word == "no data":
            lines.append(f"{what} vs {baseline}: no per-user difference on test (no user has a finite value "
                         "under both prompts)")
        elif word == "too few users":
            lines.append(f"{what} vs {baseline}: only {int(stats['n'])} paired user(s) (interval {interval}): too few "
                         f"for a bootstrap interval (at least {MIN_PAIRED_USERS}); no verdict")
        elif word == "noise":
            lines.append(
                f"{what} vs {baseline}: the 95% CI of the per-user difference ({interval}) includes 0: "
                f"no evidence that it differs from the {baseline} prompt on test"
            )
        else:
            lines.append(f"{what} vs {baseline}: {word} on test (per-user difference 95% CI {interval}, excludes 0)")
    return lines


def _signed(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:+.4f}"
