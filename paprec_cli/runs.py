"""Run lookup and opening prompts: the one owner of "which run" and "which prompts, bound to what".

A run is a folder under `<home>/runs` written by `paprec search` (docs/RUNS.md). This module finds
one (a path, a name, or `latest`), finds its `prompts.json`, the folder to resume, and opens a prompts
document (file or run) together with the dataset and model it names, checking fingerprints and token
ids so that a document is never applied to a model it was not searched for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from paprec_cli.errors import PaprecError
from paprec_cli.export import FORMATS, Document, check_codec, check_fingerprints, check_ranges, read_prompts
from paprec_cli.inputs import PAPREC, InputProtocol, inputs_for
from paprec_cli.paths import Home

if TYPE_CHECKING:
    from paprec_cli.data.store import Dataset
    from paprec_cli.model.bundle import ModelBundle

#: Run name meaning "the most recently finished run in this home".
LATEST = "latest"
PROMPTS_FILE = "prompts.json"
MANIFEST_FILE = "manifest.json"


def resolve_run(run: str | Path, home: Home) -> Path:
    """A run directory from a path, a run name under `<home>/runs`, or `latest` (the newest finished run)."""
    path = Path(run).expanduser()
    if path.is_dir():
        return path
    named = home.runs / str(run)
    if named.is_dir():
        return named
    if str(run) == LATEST:
        finished = sorted(p.parent for p in home.runs.glob(f"*/{PROMPTS_FILE}")) if home.runs.is_dir() else []
        if finished:
            return max(finished, key=lambda p: ((p / PROMPTS_FILE).stat().st_mtime, p.name))
    known = sorted(p.name for p in home.runs.glob("*") if p.is_dir()) if home.runs.is_dir() else []
    hint = f"runs in {home.runs}: {', '.join(known)}" if known else f"no runs in {home.runs} yet"
    raise PaprecError(f"run '{run}': not a folder and not a run name ({hint}); pass a run folder or name")


def run_prompts(run: str | Path, home: Home) -> Path:
    """The `prompts.json` of a run (by folder or name); an error if the search has not written it yet."""
    folder = resolve_run(run, home)
    path = folder / PROMPTS_FILE
    if not path.is_file():
        raise PaprecError(
            f"{folder}: no {PROMPTS_FILE} (the search has not finished); "
            f"resume it with `paprec search --resume {folder}`"
        )
    return path


def resume_path(home: Home, name: str) -> Path:
    """The folder of a run to resume: a path, or a name under `<home>/runs` (`--resume`)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if (home.runs / name).is_dir():
        return home.runs / name
    raise PaprecError(f"--resume {name}: no such run folder (a path, or a name under {home.runs})")


def load_prompts(path: str | Path, home: Home | None = None) -> Document:
    """A prompts document from a file (JSON, Parquet, CSV) or a run folder/name, structure checked."""
    source = Path(path).expanduser()
    if source.is_dir() or (home is not None and not source.exists() and (home.runs / str(path)).is_dir()):
        source = run_prompts(path, home or Home.resolve())
    return read_prompts(source)


def prompts_source(source: str | Path, home: Home) -> Path:
    """The prompts file `paprec export-prompts RUN` reads: RUN itself if it is a file, else the run's."""
    path = Path(source).expanduser()
    return path if path.is_file() else run_prompts(source, home)


def recorded_config(run: Path | None) -> dict[str, object]:
    """The search configuration a run's manifest recorded ({}: no run, no manifest or none recorded)."""
    manifest = run / MANIFEST_FILE if run is not None else None
    if run is None or manifest is None or not manifest.is_file():
        return {}
    from paprec_cli.search.rundir import RunDir

    return dict(RunDir(run).manifest()["config"])  # the one checked reader: a damaged manifest is one line


def recorded_split_seed(run: Path | None) -> int | None:
    """The split seed a run's manifest recorded (None: no run, no manifest or not recorded)."""
    value = recorded_config(run).get("split_seed")
    return int(str(value)) if value is not None else None


@dataclass
class BoundPrompts:
    """A checked document with the dataset and model it was searched on, ready for eval or recommend."""

    doc: Document
    source: Path
    dataset: Dataset
    bundle: ModelBundle
    split_seed: int
    run: Path | None = None
    #: How prompts are written for this model (P5 checkpoints: P5's protocol, with the run's separator).
    inputs: InputProtocol = PAPREC
    #: The decoding the run's search used ("paprec" for a prompts file): eval's default.
    decoding: str = "paprec"


def open_prompts(
    prompts: str | Path,
    home: Home,
    *,
    model: str | None = None,
    dataset: str | None = None,
    tokenizer: str | None = None,
) -> BoundPrompts:
    """Load a prompts file or run, then the dataset and model it names (or the overrides), and check
    fingerprints and token ids so that a document is never applied to a model it was not searched for.

    The split seed comes from the run's manifest when there is one, else from the model's config (the
    splits the model was trained on), as the search does. `tokenizer` is the T5 tokenizer of a HF/P5
    checkpoint; without it, the one the run's search used (its manifest), else the one beside the weights.
    """
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import load_model
    from paprec_cli.registry import model_fingerprint, split_seed

    path = Path(prompts).expanduser()
    if not path.exists() and path.suffix.lstrip(".").lower() in FORMATS:
        raise PaprecError(f"{path}: no such prompts file; pass a file written by `paprec export-prompts` or a run")
    run = None if path.is_file() else resolve_run(prompts, home)
    source = path if run is None else run_prompts(run, home)
    doc = read_prompts(source)
    data = load_dataset(home, dataset or str(doc["dataset"]))
    check_fingerprints(doc, source, dataset_fingerprint=data.fingerprint)
    model_ref = model or str(doc["model"])
    recorded = recorded_config(run)
    if tokenizer is None and model is None and recorded.get("tokenizer"):
        tokenizer = str(recorded["tokenizer"])
    bundle = load_model(model_ref, home, dataset=data, tokenizer=Path(tokenizer) if tokenizer else None)
    check_fingerprints(doc, source, model_fingerprint=model_fingerprint(bundle))
    check_ranges(doc, source, n_users=data.n_users, vocab_size=bundle.codec.vocab_size, dataset=data.name,
                 model=model_ref)
    check_codec(doc, bundle.codec, source, model=model_ref)
    seed_value = recorded.get("split_seed")
    seed = int(str(seed_value)) if seed_value is not None else split_seed(bundle)
    separator = recorded.get("separator")
    inputs = inputs_for(bundle.config, data.source_name, str(separator) if separator is not None else None,
                        int(str(recorded.get("seed") or 0)))
    return BoundPrompts(doc, source, data, bundle, seed, run, inputs, str(recorded.get("decoding") or "paprec"))
