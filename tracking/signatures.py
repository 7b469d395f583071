"""Signatures: a version's input and output schema, from a pydantic model or a training frame.

A signature is a list of ``FeatureSpec`` (name, type, bounds, required or optional, description),
stored with the version as JSON. Stores keep the shape earlier releases wrote, a plain list of the
inputs, when a version has no output signature; with one they write
``{"inputs": [...], "outputs": [...]}``. ``decode`` reads both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from tracking.entities import FeatureSpec
from tracking.errors import InvalidInput

#: JSON Schema types -> signature types.
_JSON_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}
#: NumPy dtype kinds -> signature types.
_DTYPE_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float", "U": "str", "S": "str"}


def from_model(model: type[BaseModel]) -> list[FeatureSpec]:
    """The fields of a pydantic model as a signature, in declaration order.

    Read from the model's JSON Schema, so that bounds and patterns come out as the API validates
    them (``Annotated[int, Field(ge=0)]`` and ``conint(ge=0)`` alike).

    Raises:
        InvalidInput: a field is not a scalar (a list, an object or a union of several types).
    """
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    specs = []
    for name, prop in schema.get("properties", {}).items():
        kinds = prop.get("anyOf", [prop])
        typed = [kind for kind in kinds if kind.get("type") != "null"]
        if len(typed) != 1 or typed[0].get("type") not in _JSON_TYPES:
            raise InvalidInput(f"signature field {name!r} of {model.__name__} is not a scalar")
        field = typed[0]
        default = prop.get("default")
        specs.append(
            FeatureSpec(
                name=name,
                type=_JSON_TYPES[field["type"]],
                required=name in required,
                minimum=field.get("minimum"),
                maximum=field.get("maximum"),
                min_length=field.get("minLength"),
                max_length=field.get("maxLength"),
                pattern=field.get("pattern"),
                description=prop.get("description", field.get("description")),
                default=default if isinstance(default, bool | int | float | str) else None,
            )
        )
    return specs


def infer(frame: Mapping[str, Any] | Any) -> list[FeatureSpec]:
    """A signature inferred from a training frame: column names, types and missing values.

    ``frame`` is a mapping of column name to NumPy array (or sequence), or anything with
    ``items()`` yielding such pairs (a pandas DataFrame). A column with a missing value (NaN or
    None) is optional. Observed minima and maxima are not recorded as bounds: the training range
    is not the range of valid inputs, and serving must not refuse a new extreme.

    Raises:
        InvalidInput: a column whose values have no scalar type.
    """
    import numpy as np

    items: Iterable[tuple[Any, Any]] = frame.items()
    specs = []
    for name, column in items:
        values = np.asarray(column)
        kind = _DTYPE_KINDS.get(values.dtype.kind)
        missing = False
        if kind is None and values.dtype.kind == "O":
            present = [value for value in values.tolist() if value is not None]
            missing = len(present) < values.size
            kinds = {_python_kind(value) for value in present}
            kind = kinds.pop() if len(kinds) == 1 else None
        elif kind == "float":
            missing = bool(np.isnan(values).any())
        if kind is None:
            raise InvalidInput(f"column {name!r} has no single scalar type ({values.dtype})")
        specs.append(FeatureSpec(name=str(name), type=kind, required=not missing))
    return specs


def _python_kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return None if math.isnan(value) else "float"
    return "str" if isinstance(value, str) else None


def _dump(specs: Iterable[FeatureSpec]) -> list[dict[str, Any]]:
    # Defaults left out: old readers see the {"name", "type"} items they wrote, items stay small.
    return [spec.model_dump(exclude_defaults=True) for spec in specs]


def encode(inputs: Iterable[FeatureSpec], outputs: Iterable[FeatureSpec] = ()) -> str:
    """The stored JSON of a version's signatures (see the module docstring)."""
    dumped_outputs = _dump(outputs)
    if not dumped_outputs:
        return json.dumps(_dump(inputs))
    return json.dumps({"inputs": _dump(inputs), "outputs": dumped_outputs})


def decode(text: str | None) -> tuple[list[FeatureSpec], list[FeatureSpec]]:
    """The (inputs, outputs) of a stored signature, in either stored shape."""
    document = json.loads(text or "[]")
    if isinstance(document, list):
        return [FeatureSpec(**spec) for spec in document], []
    return (
        [FeatureSpec(**spec) for spec in document.get("inputs", [])],
        [FeatureSpec(**spec) for spec in document.get("outputs", [])],
    )
