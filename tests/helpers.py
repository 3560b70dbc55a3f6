"""Helpers shared by the test modules (pytest puts `tests/` on sys.path): running the CLI in-process,
reading its `--json` line, the tiny search home, a free port, and installing an example plugin package
from `examples/` into a folder. Fixtures built on them live in conftest.py."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from paprec_cli.paths import Home

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import Dataset
    from paprec_cli.model import ModelBundle
    from paprec_cli.plugins import Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def invoke(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `paprec ARGS` run in-process; an unexpected exception is re-raised."""
    from paprec_cli.cli import app

    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def last_json(stdout: str) -> dict[str, Any]:
    """The `--json` object: the last line of stdout."""
    out = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(out, dict)
    return out


def install_example(name: str, work: Path) -> Path:
    """`pip install --target` a copy of `examples/NAME` (the copy keeps build files out of the repo);
    returns the target folder, which holds the package and its entry-point metadata."""
    source = work / "src"
    shutil.copytree(EXAMPLES / name, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
           "--disable-pip-version-check", "--no-index", "--target", str(target), str(source)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"installing the example plugin {name} failed:\n{done.stderr}")
    return target


def tiny_model(root: Path, extra: dict[str, str], ids: str,
               vocab_size: int) -> tuple[Home, Dataset, ModelBundle, Registry]:
    """(home, dataset, untrained 1-layer d=32 model bundle, registry) on a synthetic dataset imported into
    `root` with the generator options `extra` (seed 0)."""
    from paprec_cli.data.store import import_dataset, load_dataset
    from paprec_cli.model import build_codec, create_model
    from paprec_cli.plugins import load_registry
    from paprec_cli.specs import ImportOptions

    home = Home.resolve(root)
    registry = load_registry()
    import_dataset(registry.dataset("synthetic"), None, home, options=ImportOptions(seed=0, extra=extra))
    dataset = load_dataset(home, "synthetic")
    texts = [t.source for entry in registry.tasks.values() for t in entry.spec.templates]
    codec = build_codec(dataset, ids, texts, vocab_size=vocab_size)
    bundle = create_model({"d_model": 32, "num_layers": 1, "num_heads": 2, "d_ff": 64}, codec, seed=0)
    return home, dataset, bundle, registry


def synthetic_task_data(root: Path, users: int, items: int) -> TaskData:
    """Splits (seed 0) of a synthetic dataset with `users` users and `items` items (4 categories, 8 items each)
    imported into a home at `root`."""
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import import_dataset, load_dataset
    from paprec_cli.plugins import load_registry
    from paprec_cli.specs import ImportOptions

    home = Home.resolve(root)
    options = ImportOptions(extra={"users": str(users), "items": str(items), "categories": "4", "length": "8"})
    import_dataset(load_registry().dataset("synthetic"), None, home, options=options)
    return TaskData(load_dataset(home, "synthetic"), seed=0)


def make_home(root: Path) -> Home:
    """A 40-user synthetic dataset and an untrained tiny model saved as `synthetic-tiny-atomic`."""
    from paprec_cli.model import save_model

    extra = {"users": "40", "items": "30", "categories": "4", "length": "8"}
    home, _, bundle, _ = tiny_model(root, extra, "atomic", 300)
    save_model(bundle, home.model_dir("synthetic-tiny-atomic"))
    return home


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a torchrun rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def last_line(err: str) -> str:
    """The last stderr line; no traceback anywhere."""
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def leftovers(root: Path) -> list[str]:
    """Temporary files or folders of an atomic write, anywhere under `root`."""
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith((".tmp", ".old")))


def parsed_train_options(args: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The `TrainOptions` that `paprec ARGS` (a train command line) hands to the training run (not run)."""
    from paprec_cli.errors import PaprecError
    from paprec_cli.training import run

    seen: list[Any] = []

    def capture(options: Any, *rest: Any, **kwargs: Any) -> Any:
        seen.append(options)
        raise PaprecError("captured")

    with monkeypatch.context() as patch:
        patch.setattr(run, "train", capture)
        code, _, err = invoke(*args)
    assert code == 2 and seen, err
    return seen[0]
