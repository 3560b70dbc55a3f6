"""Options every command shares, and the error boundary between user mistakes and the shell."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from paprec_cli.errors import PaprecError
from paprec_cli.output import Output
from paprec_cli.paths import Home
from paprec_cli.plugins import Registry, load_registry

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Where data, models and runs live (default: $PAPREC_HOME or the user data dir)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line of stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and results.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More detail on stderr.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (recorded in every manifest).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu, cuda or cuda:N.")]
TokenizerOpt = Annotated[
    Path | None,
    typer.Option(
        "--tokenizer",
        help="T5 tokenizer of a HF T5 folder or P5 .pth: a folder with tokenizer.json or only spiece.model, "
        "or either file (default: the one beside the checkpoint).",
    ),
]

SeparatorOpt = Annotated[
    str | None,
    typer.Option(
        "--separator",
        help="P5 checkpoints: history separator , (default) or -> or random (P5's seeded coin flip per example).",
    ),
]

DecodingOpt = Annotated[
    str,
    typer.Option(
        "--decoding",
        help="paprec (constrained beam, whole-word embeddings) or p5 (as P5/PAP-REC evaluate: no whole-word "
        "embeddings, unconstrained 20-beam, length-normalised, non-item outputs dropped and counted).",
    ),
]


def tokenizer_arg(tokenizer: Path | None) -> str | None:
    """--tokenizer as an absolute path (recorded in manifests), refused when it does not exist."""
    if tokenizer is None:
        return None
    if not tokenizer.exists():
        raise PaprecError(f"--tokenizer {tokenizer}: no such file or folder; pass a folder with tokenizer.json "
                          "or spiece.model")
    return str(tokenizer.expanduser().resolve())


@dataclass
class Ctx:
    """What a command needs from its invocation: output settings, home, plugins."""

    out: Output
    home: Home

    @property
    def registry(self) -> Registry:
        return load_registry()


def make_ctx(home: Path | None, json_out: bool = False, quiet: bool = False, verbose: bool = False) -> Ctx:
    return Ctx(out=Output(json=json_out, quiet=quiet, verbose=verbose), home=Home.resolve(home))


F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn `PaprecError` into one stderr line and exit code 2 (no traceback), Ctrl-C into 130."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PaprecError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            sys.stderr.write("Interrupted.\n")
            raise typer.Exit(130) from None
        except RuntimeError as exc:  # torch.OutOfMemoryError, matched by name: importing torch here costs seconds
            if type(exc).__name__ != "OutOfMemoryError":
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
            sys.stderr.write(f"Error: the device ran out of memory ({first}); pass a smaller --batch-size\n")
            raise typer.Exit(2) from None

    return wrapper


class PaprecTyper(typer.Typer):
    """A Typer app whose commands all pass through `user_errors`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(func: F) -> F:
            register(user_errors(func))
            return func

        return decorator
