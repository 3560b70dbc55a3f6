"""The fix line for a broken import: the exact `paprec data import` command that makes it again, read from
its manifest (the dataset it was imported from, the stored name, `--from`, indexing, tie-break, seed and every
`-o` option), so the user can run it as printed."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from paprec_cli.paths import home_option


def source_path(manifest: Mapping[str, object]) -> str | None:
    """The `--from` of the import: as recorded (`from`, imports since issue-16e), else derived from the source
    files it read: the one file, or the folder holding them all; None for a generated dataset (no sources)."""
    recorded = manifest.get("from")
    if isinstance(recorded, str) and recorded:
        return recorded
    sources = manifest.get("sources")
    paths = [str(s["path"]) for s in sources if isinstance(s, dict) and isinstance(s.get("path"), str)] \
        if isinstance(sources, list) else []
    if not paths:
        return None
    return paths[0] if len(paths) == 1 else os.path.commonpath(paths)


def reimport_command(manifest: Mapping[str, object], folder: Path) -> str | None:
    """`paprec data import ... --force` (shell-quoted) that imports the dataset in `folder` again as its
    manifest records it (`--home` when the home above `folder` is not the one paprec uses without it); None when
    the manifest lacks what the command needs (a damaged one)."""
    dataset, name = manifest.get("dataset"), manifest.get("name")
    indexing, tie_break, seed = manifest.get("indexing"), manifest.get("tie_break"), manifest.get("seed", 0)
    options = manifest.get("options", {})
    if not (isinstance(dataset, str) and dataset and isinstance(indexing, str) and isinstance(tie_break, str)
            and isinstance(seed, int) and isinstance(options, dict)):
        return None
    args = ["paprec", "data", "import", dataset]
    source = source_path(manifest)
    if source is not None:
        args += ["--from", source]
    stored = name if isinstance(name, str) and name else Path(folder).name
    if stored != dataset:
        args += ["--name", stored]
    args += ["--indexing", indexing, "--tie-break", tie_break, "--seed", str(seed)]
    for key, value in options.items():
        args += ["-o", f"{key}={value}"]
    args += ["--force", *home_option(Path(folder).parent.parent)]
    return shlex.join(args)


def reimport_fix(manifest: Mapping[str, object] | None, folder: Path) -> str:
    """The fix that ends a broken import's error: re-import with the exact command, or, when the manifest
    itself is unreadable, the command's shape with what to fill in."""
    command = reimport_command(manifest, folder) if manifest is not None else None
    name = Path(folder).name
    if command is None:
        return (f"re-import dataset '{name}' with `paprec data import DATASET [--from PATH] --name {name} --force` "
                "(the dataset, source and options it was imported with)")
    return f"re-import dataset '{name}' with `{command}`"
