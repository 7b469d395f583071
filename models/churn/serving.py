"""How the churn model is served: ``POST /predict/churn`` and ``/predict/churn/batch``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from models.churn import MODEL_NAME
from models.churn.features import ChurnFeatures
from models.churn.predictor import ChurnPrediction, ChurnPredictor
from models.serving import ServedModel
from tracking.entities import Flavor


class ChurnBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rows: Annotated[list[ChurnFeatures], Field(min_length=1, description="Players to score.")]


class ChurnBatchResponse(BaseModel):
    predictions: list[ChurnPrediction]
    model_version: str


def _risk_level(record: dict[str, Any]) -> str:
    risk_level: str = record["risk_level"]
    return risk_level


SERVED = ServedModel(
    name=MODEL_NAME,
    flavor=Flavor.XGBOOST,
    request=ChurnFeatures,
    response=ChurnPrediction,
    factory=ChurnPredictor.from_version,
    batch_request=ChurnBatchRequest,
    batch_response=ChurnBatchResponse,
    outcome=_risk_level,
    summary="Churn probability and risk level of one player.",
)
