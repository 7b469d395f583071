"""Serving an ``onnx`` model from its stored signature, like the xgboost generic predictor.

The graph has one float tensor input of shape ``[rows, columns]``: the signature's numeric fields
in signature order (or in the order of a ``feature_names`` JSON list in the model's metadata, as
``models.churn_baseline.train`` writes it, the ONNX counterpart of a booster's feature names).
The answer is the probability of the positive class for a binary classifier (skl2onnx's
``output_probability`` / ``probabilities`` tensor, converted with ``zipmap=False``), one
probability per class for more classes, the value for a regressor: the same
``{"prediction", "model_version"}`` record as ``models.tabular``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from models.serving import Predictor, ServedModel
from models.tabular import TabularPredictor
from models.tabular import served_model as tabular_served_model
from tracking import InvalidInput, ModelVersion

#: Output names skl2onnx gives a classifier's probabilities (convert_sklearn, to_onnx).
PROBABILITY_OUTPUTS = ("output_probability", "probabilities")
FEATURE_NAMES_KEY = "feature_names"


class OnnxModel:
    """An onnxruntime session seen as the predictors see a booster.

    ``feature_names`` (from the model's metadata, if written) and ``inplace_predict(matrix)``
    returning one value, or one row of class probabilities, per input row.
    """

    def __init__(self, session: Any, *, source: str) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            shown = [(i.name, i.type) for i in inputs]
            raise InvalidInput(f"{source}: expected one float tensor input, the model has {shown}")
        self.session = session
        self.input_name: str = inputs[0].name
        shape = inputs[0].shape
        #: The input's column count when the graph fixes it (an int, not a symbolic name).
        fixed = len(shape) == 2 and isinstance(shape[-1], int)
        self.width: int | None = shape[-1] if fixed else None
        self.output_name, self.binary = _chosen_output(session, source)
        metadata = session.get_modelmeta().custom_metadata_map
        try:
            raw = metadata.get(FEATURE_NAMES_KEY)
            names = None if raw is None else json.loads(raw)
        except json.JSONDecodeError:
            names = False  # reported below, with the other malformed values
        if names is not None and not (
            isinstance(names, list) and all(isinstance(name, str) for name in names)
        ):
            raise InvalidInput(f"{source}: metadata {FEATURE_NAMES_KEY!r} is not a list of names")
        self.feature_names: list[str] | None = names
        if names is not None and self.width is not None and len(names) != self.width:
            raise InvalidInput(
                f"{source}: {len(names)} feature names for an input of {self.width} columns"
            )

    def inplace_predict(self, matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Run the graph on a float32 ``[rows, columns]`` matrix (NaN where a value is missing)."""
        [output] = self.session.run([self.output_name], {self.input_name: matrix})
        if self.binary:
            return output[:, 1]  # type: ignore[no-any-return]
        if output.ndim == 2 and output.shape[1] == 1:
            return output[:, 0]  # type: ignore[no-any-return]
        return output  # type: ignore[no-any-return]


def _chosen_output(session: Any, source: str) -> tuple[str, bool]:
    """The output to answer with and whether it is a binary classifier's ``[rows, 2]``."""
    outputs = {output.name: output for output in session.get_outputs()}
    for name in PROBABILITY_OUTPUTS:
        output = outputs.get(name)
        if output is None:
            continue
        if not output.type.startswith("tensor("):
            # A ZipMap output: a list of dicts per row, slow and not a tensor.
            raise InvalidInput(
                f"{source}: output {name!r} is {output.type}; convert the classifier with "
                "options={'zipmap': False} so probabilities are a tensor"
            )
        return name, len(output.shape) == 2 and output.shape[1] == 2
    floats = [o.name for o in outputs.values() if o.type in ("tensor(float)", "tensor(double)")]
    if not floats:
        shown = [(o.name, o.type) for o in outputs.values()]
        raise InvalidInput(f"{source}: no float tensor output to answer with in {shown}")
    return floats[0], False


def wrap(version: ModelVersion, session: Any) -> OnnxModel:
    """``session`` as an ``OnnxModel``.

    Raises:
        InvalidInput: the graph's inputs or outputs cannot be served.
    """
    return OnnxModel(session, source=f"{version.name} {version.label}")


def predictor(version: ModelVersion, session: Any) -> Predictor:
    """The generic predictor of an ONNX version: ``TabularPredictor`` over its session.

    Raises:
        InvalidInput: the session cannot be served, or its input width is not the number of
            model columns the signature gives.
    """
    model = wrap(version, session)
    served = TabularPredictor.from_version(version, model)
    if model.width is not None and model.width != len(served.columns):
        raise InvalidInput(
            f"{version.name} {version.label}: the model takes {model.width} columns, the "
            f"signature has {len(served.columns)} numeric fields {list(served.columns)}"
        )
    return served


def served_model(version: ModelVersion) -> ServedModel:
    """The generic declaration for an ONNX ``version`` (request built from its signature).

    Raises:
        InvalidInput: its signature cannot be turned into a request schema.
    """
    return dataclasses.replace(tabular_served_model(version), factory=predictor)
