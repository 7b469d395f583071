"""How the churn baseline is served: ``POST /predict/churn-baseline`` (and ``/batch``), with
churn's request and answer, so a client can switch models by changing the path."""

from __future__ import annotations

from typing import Any

from models.churn.features import ChurnFeatures
from models.churn.predictor import ChurnPrediction
from models.churn.serving import ChurnBatchRequest, ChurnBatchResponse
from models.churn_baseline import MODEL_NAME
from models.churn_baseline.predictor import from_version
from models.serving import ServedModel
from tracking.entities import Flavor


def _risk_level(record: dict[str, Any]) -> str:
    risk_level: str = record["risk_level"]
    return risk_level


SERVED = ServedModel(
    name=MODEL_NAME,
    flavor=Flavor.ONNX,
    request=ChurnFeatures,
    response=ChurnPrediction,
    factory=from_version,
    batch_request=ChurnBatchRequest,
    batch_response=ChurnBatchResponse,
    outcome=_risk_level,
    summary="Churn probability and risk level of one player, from the logistic baseline.",
)
