"""Serving a tabular model that has no package here, from its flavor and stored signature.

A team registers an ``xgboost`` model with a signature (``tracking.signatures.from_model`` or
``infer``) and lists its name in ``SERVED_MODELS``: the request schema is built from the signature
(types, bounds, required or optional, descriptions), the numeric fields are the model's columns
(the booster's own feature names, when it has them, choose and order them) and each answer is
``{"prediction", "model_version"}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain
from math import nan
from operator import attrgetter
from types import SimpleNamespace
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)

from models.serving import ServedModel
from tracking import InvalidInput, ModelVersion
from tracking.entities import FeatureSpec

#: Signature types -> strict pydantic types: lax mode would read true as 1 and "3" as 3.
#: (StrictFloat still takes a JSON integer, as JSON Schema's "number" does.)
_TYPES: dict[str, Any] = {
    "int": StrictInt,
    "float": StrictFloat,
    "str": StrictStr,
    "bool": StrictBool,
    # XGBoost's own codes: "i" indicator, "q" quantitative.
    "i": StrictInt,
    "q": StrictFloat,
}
_NUMERIC = frozenset({"int", "float", "bool", "i", "q"})
#: XGBoost threads per prediction (as for churn: one thread is fastest for a few rows).
SERVING_THREADS = 1


def title(name: str) -> str:
    """``churn-baseline`` -> ``ChurnBaseline``: a model name as an OpenAPI component prefix."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))


def request_model(name: str, signature: Sequence[FeatureSpec]) -> type[BaseModel]:
    """The request body of one row, built from a stored signature.

    Raises:
        InvalidInput: the signature is empty or has a type with no JSON equivalent.
    """
    if not signature:
        raise InvalidInput(f"model {name!r} has no signature to validate requests with")
    fields: dict[str, Any] = {}
    for spec in signature:
        base = _TYPES.get(spec.type)
        if base is None:
            raise InvalidInput(
                f"model {name!r}: signature field {spec.name!r} has type {spec.type}"
            )
        constraints = Field(
            ge=spec.minimum, le=spec.maximum, min_length=spec.min_length,
            max_length=spec.max_length, pattern=spec.pattern, description=spec.description,
        )  # fmt: skip
        if spec.required:
            fields[spec.name] = (Annotated[base, constraints], ...)
        else:
            fields[spec.name] = (Annotated[base | None, constraints], spec.default)
    return create_model(
        f"{title(name)}Request",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True),
        __doc__=f"One row for model {name!r}, as its registered signature declares.",
        **fields,
    )


class TabularPrediction(BaseModel):
    model_config = ConfigDict(frozen=True)

    prediction: float | list[float] = Field(
        description="The model's output: a probability or value, or one per class."
    )
    model_version: str


class TabularPredictor:
    """A loaded model over the numeric fields of its signature."""

    def __init__(self, version: ModelVersion, model: Any, columns: tuple[str, ...]) -> None:
        self.version = version
        self.model = model
        self.columns = columns

    @classmethod
    def from_version(cls, version: ModelVersion, model: Any) -> TabularPredictor:
        """Wrap a loaded XGBoost booster.

        Raises:
            InvalidInput: no signature, or the booster needs a column the signature lacks.
        """
        numeric = tuple(spec.name for spec in version.signature if spec.type in _NUMERIC)
        names = tuple(getattr(model, "feature_names", None) or ())
        missing = sorted(set(names) - set(numeric))
        if missing:
            raise InvalidInput(
                f"{version.name} {version.label}: the signature lacks model columns {missing}"
            )
        columns = names or numeric
        if not columns:
            raise InvalidInput(f"{version.name} {version.label} has no numeric signature fields")
        if hasattr(model, "set_param"):
            model.set_param({"nthread": SERVING_THREADS})
            # Here, not at import: only an XGBoost model needs xgboost imported.
            from models.xgboost_dense import dense_booster

            model = dense_booster(model)
        return cls(version, model, columns)

    @property
    def label(self) -> str:
        return self.version.label

    def predict_records(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """``{"prediction", "model_version"}`` per row; a missing optional value is NaN."""
        if not rows:
            return []
        matrix = feature_matrix(rows, self.columns)
        outputs: list[Any] = self.model.inplace_predict(matrix).tolist()
        label = self.label
        return [{"prediction": output, "model_version": label} for output in outputs]

    def warm_up(self) -> list[dict[str, Any]]:
        """One prediction of a row of zeros (every column present), so the first request does
        not pay for lazy initialisation."""
        return self.predict_records([SimpleNamespace(**dict.fromkeys(self.columns, 0.0))])


def feature_matrix(rows: Sequence[Any], names: Sequence[str]) -> np.ndarray:
    """The rows' ``names`` attributes as a float32 matrix; a missing or ``None`` value is NaN.

    Read by one ``attrgetter`` per row into one ``np.fromiter``: a list per row, then numpy's
    conversion of the nested lists, cost twice as much for a 100-row batch
    (bench/serving_bench.py --profile). ``fromiter`` reads ``None`` as NaN, as ``float32``
    conversion does; a missing attribute or a value it cannot convert takes the per-value path.
    """
    width = len(names)
    get = attrgetter(*names)
    try:
        values = chain.from_iterable(map(get, rows)) if width > 1 else map(get, rows)
        flat = np.fromiter(values, dtype=np.float32, count=len(rows) * width)
        return flat.reshape(len(rows), width)
    except (TypeError, ValueError, AttributeError):
        return np.asarray(
            [[nan if (value := getattr(row, name, None)) is None else float(value)
              for name in names] for row in rows],
            dtype=np.float32,
        )  # fmt: skip


def served_model(version: ModelVersion) -> ServedModel:
    """The generic declaration for a tabular ``version`` (request built from its signature).

    Raises:
        InvalidInput: its signature cannot be turned into a request schema.
    """
    prefix = title(version.name)
    response = create_model(f"{prefix}Prediction", __base__=TabularPrediction)
    return ServedModel(
        name=version.name,
        flavor=version.flavor,
        request=request_model(version.name, version.signature),
        response=response,
        factory=TabularPredictor.from_version,
        summary=f"Prediction of model {version.name!r} for one row.",
    )
