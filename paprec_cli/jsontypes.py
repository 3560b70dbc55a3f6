"""JSON value types: what paprec writes to its documents (manifests, config.json, run state, reports).

`JSONObject` is the type of a document a function *produces*; a reader that indexes one narrows each
value it uses (`int(...)`, `str(...)`), since a file can hold anything.
"""

from __future__ import annotations

from typing import TypeAlias

JSONScalar: TypeAlias = None | bool | int | float | str
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject: TypeAlias = dict[str, JSONValue]

__all__ = ["JSONObject", "JSONScalar", "JSONValue"]
