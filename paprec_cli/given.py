"""Which of the running command's options the user gave, as opposed to left at their defaults: what
`paprec search --resume` compares with the run's recorded options (`search.resume`)."""

from __future__ import annotations


def given_options() -> frozenset[str]:
    """The running command's parameter names (Python names, e.g. `n_prefix`) given on the command line or
    through the environment; empty outside a command (library use)."""
    try:  # typer 0.2x vendors click: the running context is kept there
        from typer._click.core import ParameterSource
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - a typer that uses click itself
        from click import get_current_context  # type: ignore[assignment,no-redef]
        from click.core import ParameterSource  # type: ignore[assignment]
    ctx = get_current_context(silent=True)
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return frozenset(name for name in ctx.params if ctx.get_parameter_source(name) in given) if ctx else frozenset()
