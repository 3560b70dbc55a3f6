"""paprec: personalized automatic prompt search for recommendation language models.

The plugin contract is re-exported here, so a plugin needs only `from paprec_cli import ...`:
`hookimpl` marks its hook implementations, the spec types are what it registers and exchanges with the
core (see `paprec_cli.specs`), and `PaprecError`/`DataFormatError` report bad user input.
"""

from importlib.metadata import PackageNotFoundError, version

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.hookspecs import hookimpl
from paprec_cli.specs import (
    INTERACTION_SCHEMA,
    ITEM_SCHEMA,
    SURROGATE,
    DatasetSpec,
    Example,
    ImportOptions,
    MetricSpec,
    Part,
    RawDataset,
    SourceFile,
    TaskKind,
    TaskSpec,
    Template,
    Word,
    WordKind,
)

try:
    __version__ = version("paprec")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = [
    "INTERACTION_SCHEMA",
    "ITEM_SCHEMA",
    "SURROGATE",
    "DataFormatError",
    "DatasetSpec",
    "Example",
    "ImportOptions",
    "MetricSpec",
    "PaprecError",
    "Part",
    "RawDataset",
    "SourceFile",
    "TaskKind",
    "TaskSpec",
    "Template",
    "Word",
    "WordKind",
    "__version__",
    "hookimpl",
]
