"""Helpers shared by the test modules (pytest puts `tests/` on sys.path): running the CLI in-process,
reading its `--json` line, and installing an example plugin package from `examples/` into a folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

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
