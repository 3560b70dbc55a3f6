"""Built-in tasks: sequential, direct and rating recommendation."""

from paprec_cli.hookspecs import hookimpl


@hookimpl
def register_tasks(register):  # type: ignore[no-untyped-def]
    pass
