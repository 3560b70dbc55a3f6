"""JSON value types: what paprec writes to its documents (manifests, config.json, run state, reports).

`JSONObject` is the type of a document a function *produces*; a reader that indexes one narrows each
value it uses (`int(...)`, `str(...)`), since a file can hold anything. Containers inside a document are
read-only views (covariant), so a `dict[str, float]` or a `list[int]` is a `JSONValue` as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias, Union

JSONScalar: TypeAlias = Union[None, bool, int, float, str]  # noqa: UP007 (a runtime alias on Python 3.10)
JSONValue: TypeAlias = Union[JSONScalar, Sequence["JSONValue"], Mapping[str, "JSONValue"]]  # noqa: UP007
JSONObject: TypeAlias = dict[str, JSONValue]

__all__ = ["JSONObject", "JSONScalar", "JSONValue"]
