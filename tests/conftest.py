"""Shared fixtures: an isolated paprec home per test, the tiny search home per module, the real-data folder,
a CLI runner. Helpers that are not fixtures live in helpers.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# Tests run tiny models, where a second intra-op thread only adds wake-up stalls (7 ms instead of 20 us per
# tiny matmul on a busy 2-core machine). Set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Plugins installed in the environment must not change what the tests see (as llm does): only the built-in
# tasks and datasets load. A test that needs an external plugin opts in by setting PAPREC_LOAD_PLUGINS.
os.environ["PAPREC_LOAD_PLUGINS"] = ""

import pytest
from typer.testing import CliRunner

from paprec_cli.paths import Home

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PAPREC_HOME so no test sees another's data, models or runs."""
    root = tmp_path / "home"
    monkeypatch.setenv("PAPREC_HOME", str(root))
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def shared_data(name: str) -> Path:
    """The real dataset folder, or skip the test with the reason."""
    folder = SHARED_DATA / name
    if not folder.exists():
        pytest.skip(f"real data not present at {folder} (it lives outside the repo, in ../shared/data)")
    return folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests skip cleanly without CUDA; nothing else may need a GPU."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """One per test module: a 40-user synthetic dataset and an untrained tiny model (`helpers.make_home`)."""
    from helpers import make_home

    return make_home(tmp_path_factory.mktemp("home"))


@pytest.fixture
def holder() -> Iterator[object]:
    """Start another process that holds a lock file (exclusive or shared) until the test ends."""
    procs: list[subprocess.Popen[str]] = []

    def hold(path: Path, shared: bool = False) -> int:
        code = (
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
            f"fcntl.flock(fd, fcntl.{'LOCK_SH' if shared else 'LOCK_EX'})\n"
            "os.ftruncate(fd, 0); os.write(fd, f'process {os.getpid()} (paprec test)'.encode())\n"
            "print('held', flush=True); time.sleep(120)\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        return proc.pid

    def stop() -> None:
        while procs:
            proc = procs.pop()
            proc.kill()
            proc.wait()

    hold.stop = stop  # type: ignore[attr-defined]
    yield hold
    stop()


@pytest.fixture
def train_home(tmp_path: Path) -> Path:
    """A home with a small synthetic import (40 users, 60 items) for training tests."""
    from helpers import invoke

    root = tmp_path / "home"
    code, _, err = invoke("data", "import", "synthetic", "--home", str(root), "-q", "-o", "users=40",
                          "-o", "items=60", "-o", "length=7")
    assert code == 0, err
    return root
