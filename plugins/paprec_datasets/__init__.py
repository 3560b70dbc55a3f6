"""Built-in datasets."""

from paprec_cli.hookspecs import hookimpl


@hookimpl
def register_datasets(register):  # type: ignore[no-untyped-def]
    pass
