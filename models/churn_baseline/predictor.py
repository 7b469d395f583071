"""The churn baseline's predictor: churn's predictor over an ONNX session."""

from __future__ import annotations

from typing import Any

from models.churn.features import FEATURE_NAMES
from models.churn.predictor import ChurnPredictor
from models.onnx_tabular import wrap
from tracking import InvalidInput, ModelVersion


def from_version(version: ModelVersion, session: Any) -> ChurnPredictor:
    """Wrap a loaded ONNX session in churn's predictor (thresholds from the registry).

    Raises:
        InvalidInput: the graph does not take churn's feature columns, or the version has no
            risk thresholds.
    """
    model = wrap(version, session)
    if model.width is not None and model.width != len(FEATURE_NAMES):
        raise InvalidInput(
            f"{version.name} {version.label} takes {model.width} columns, churn has "
            f"{len(FEATURE_NAMES)}"
        )
    return ChurnPredictor.from_version(version, model)
