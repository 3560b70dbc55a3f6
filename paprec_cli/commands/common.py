"""Options every command shares, and the error boundary between user mistakes and the shell."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import click
import typer
from typer.core import TyperGroup

try:  # typer 0.2x vendors click: its usage errors are not click's own class
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - a typer that uses click itself
    from click import UsageError  # type: ignore[assignment]

from paprec_cli.checks import check_options
from paprec_cli.errors import PaprecError, json_error, user_message
from paprec_cli.locks import command_scope
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
    """The error boundary: user-caused failures (see `errors.user_message`) become one stderr line and an exit
    code, never a traceback; with `--json`, also one JSON object on stdout. Locks taken during the command
    are released when it ends; SIGTERM is handled as Ctrl-C (temporary files removed on the way out)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            check_options(kwargs)
            with command_scope(), sigterm_as_interrupt():
                return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.ClickException):
            raise
        except BaseException as exc:
            found = user_message(exc)
            if found is None:
                raise
            message, code = found
            sys.stderr.write(f"{message}\n" if isinstance(exc, KeyboardInterrupt) else f"Error: {message}\n")
            if kwargs.get("json_out") and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0's stdout only
                sys.stdout.write(json_error(message, code) + "\n")
                sys.stdout.flush()
            raise typer.Exit(code) from None

    return wrapper


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does) while the block runs, in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class JsonUsageGroup(TyperGroup):
    """The root command group: with `--json` anywhere on the command line, a usage error (an unknown option, a
    value of the wrong type such as `--seed abc`) also prints `{"error": ..., "exit_code": 2}` on stdout, as
    every other error does (`user_errors`); click's usual message still goes to stderr."""

    json_requested = False

    def main(self, args: Any = None, *rest: Any, **extra: Any) -> Any:
        self.json_requested = "--json" in (list(args) if args is not None else sys.argv[1:])
        return super().main(args, *rest, **extra)

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        with _json_usage_errors(self):
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _json_usage_errors(self):
            return super().invoke(ctx)


@contextlib.contextmanager
def _json_usage_errors(group: JsonUsageGroup) -> Iterator[None]:
    try:
        yield
    except UsageError as exc:
        if group.json_requested and not getattr(exc, "paprec_json_done", False):
            sys.stdout.write(json_error(" ".join(exc.format_message().split()), exc.exit_code) + "\n")
            sys.stdout.flush()
            exc.paprec_json_done = True  # type: ignore[attr-defined]
        raise


class PaprecTyper(typer.Typer):
    """A Typer app whose commands all pass through `user_errors`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(func: F) -> F:
            register(user_errors(func))
            return func

        return decorator
