"""The dataset catalog: which datasets are registered and imported (`paprec data list`), and one checked
import request (`paprec data import`): option parsing, name/indexing/tie-break checks, the import itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paprec_cli.checks import check_plain_name
from paprec_cli.data.store import Indexing, TieBreak, dataset_exists, import_dataset, list_imported
from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home
from paprec_cli.specs import ImportOptions

if TYPE_CHECKING:
    from paprec_cli.plugins import Registry

INDEXINGS: tuple[Indexing, ...] = ("random", "sequential")
TIE_BREAKS: tuple[TieBreak, ...] = ("source", "item")


def parse_options(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings to a dict; a missing '=' or a repeated key is a user error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PaprecError(f"--option {pair}: expected KEY=VALUE (e.g. --option sep=';')")
        if key in out:
            raise PaprecError(f"--option {key} given twice; give each key once")
        out[key] = value
    return out


def catalog(registry: Registry, home: Home) -> dict[str, Any]:
    """`{"datasets": rows, "imported": summaries, "home": root}`: registered datasets (rejected ones with
    their status) with what is imported under each, and one summary per import (a broken import carries
    `broken`: why its manifest could not be read; the others are still listed)."""
    imported = list_imported(home)
    by_dataset: dict[str, list[str]] = {}
    for manifest in imported:
        by_dataset.setdefault(manifest.get("dataset", manifest["name"]), []).append(manifest["name"])
    entries = list(registry.datasets.values()) + [r for r in registry.rejected if r.name not in registry.datasets
                                                  and hasattr(r.spec, "load")]  # fmt: skip
    rows = [{
        "name": entry.name,
        "plugin": entry.plugin,
        "status": entry.status,
        "description": entry.spec.description,
        "files": entry.spec.files,
        "needs_files": entry.spec.needs_files,
        "imported": entry.name in by_dataset,
        "imported_as": by_dataset.get(entry.name, []),
    } for entry in entries]  # fmt: skip
    summary = [
        {"name": m["name"], "dataset": m.get("dataset"), "indexing": m.get("indexing"), **m.get("counts", {}),
         **({"broken": m["broken"]} if "broken" in m else {})}
        for m in imported
    ]
    return {"datasets": rows, "imported": summary, "home": str(home.root)}


def import_checked(registry: Registry, home: Home, name: str, source: Path | None, *, store_as: str | None,
                   indexing: str, tie_break: str | None, seed: int, options: list[str],
                   info: Callable[[str], None], force: bool = False) -> dict[str, Any]:
    """Check an import request (a one-line error per bad option), import, and return the manifest.

    An existing import of the same name is replaced only with `force` (models and runs made on it record its
    fingerprint and would no longer match it); else a one-line refusal naming `--force` and `--name`."""
    if indexing not in INDEXINGS:
        raise PaprecError(f"--indexing {indexing}: expected one of {', '.join(INDEXINGS)}")
    if tie_break is not None and tie_break not in TIE_BREAKS:
        raise PaprecError(f"--tie-break {tie_break}: expected one of {', '.join(TIE_BREAKS)}")
    if store_as is not None:
        check_plain_name(store_as)
    spec = registry.dataset(name, option="NAME")
    if not spec.needs_files and source is not None:
        raise PaprecError(f"dataset '{name}' is generated and takes no --from; drop --from {source}")
    import_options = ImportOptions(seed=seed, extra=parse_options(options))
    target = store_as or name
    if dataset_exists(home, target) and not force:
        raise PaprecError(f"dataset '{target}' is already imported in {home.dataset_dir(target)}; add --force to "
                          f"replace it (models and runs made on it will no longer match it), or --name NEW to "
                          "keep both")
    info(f"importing {name}" + (f" from {source}" if source else "") + " ...")
    if dataset_exists(home, target):
        info(f"an import named '{target}' exists; it is replaced only if this one succeeds")
    return import_dataset(
        spec,
        source.expanduser() if source is not None else None,
        home,
        name=store_as,
        indexing=indexing,  # type: ignore[arg-type]  # checked against INDEXINGS above
        tie_break=tie_break,  # type: ignore[arg-type]  # checked against TIE_BREAKS above
        options=import_options,
    )
