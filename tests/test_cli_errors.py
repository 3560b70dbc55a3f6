"""How commands report failures a user can act on: one stderr line, exit 2, no traceback."""

from __future__ import annotations

import pytest
import torch
import typer

from paprec_cli.commands.common import user_errors
from paprec_cli.errors import PaprecError


def _raising(exc: BaseException):  # type: ignore[no-untyped-def]
    @user_errors
    def command() -> None:
        raise exc

    return command


def test_out_of_memory_names_the_option_to_change(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as ended:
        _raising(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail"))()
    err = capsys.readouterr().err
    assert ended.value.exit_code == 2
    assert err.count("\n") == 1 and "--batch-size" in err and "Tried to allocate 2.00 GiB" in err


def test_user_mistakes_exit_2_and_bugs_still_raise(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as ended:
        _raising(PaprecError("--top-k: invalid value"))()
    assert ended.value.exit_code == 2 and capsys.readouterr().err == "Error: --top-k: invalid value\n"
    with pytest.raises(RuntimeError, match="a bug"):
        _raising(RuntimeError("a bug"))()
