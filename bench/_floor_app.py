"""The serving benchmark's floor: the least a FastAPI app must do to answer a churn prediction.

It parses the body with the same pydantic schema (``ChurnFeatures``, ``model_validate_json`` on
the raw bytes), calls ``inplace_predict``
on the same artifact, loaded the same way, and answers the same JSON shape. No auth, no
middleware, no metrics, no logging, no model cache, no response model. ``bench/serving_bench.py``
serves it with uvicorn exactly like the real API and compares the two; it passes the artifact and
the version's metadata in the environment:

    FLOOR_MODEL_PATH   a verified copy of the production artifact (XGBoost UBJ/JSON)
    FLOOR_MODEL_LABEL  the version label, e.g. v1
    FLOOR_MEDIUM, FLOOR_HIGH   the version's risk thresholds
    FLOOR_GENERIC_LABEL  the label of the same artifact registered as ``churn-generic``
    FLOOR_PREDICT      ``inplace_predict`` (the floor the issue defines; the default) or
                       ``direct``: the API's own call (``models.xgboost_dense``), to compare
                       everything but the model call

``/predict/churn-generic`` is the floor of the generic path: the body schema the API builds from
the stored signature (``models.tabular.request_model``), the booster, ``{"prediction",
"model_version"}``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from models.churn.features import FEATURE_NAMES, ChurnFeatures
from models.churn.predictor import SERVING_THREADS
from models.tabular import request_model
from models.xgboost_dense import dense_booster
from tracking.flavors import load_xgboost
from tracking.signatures import from_model

# Loaded exactly as the API loads it: the same function and the same thread count.
BOOSTER = load_xgboost(Path(os.environ["FLOOR_MODEL_PATH"]).read_bytes())
BOOSTER.set_param({"nthread": SERVING_THREADS})
if os.environ.get("FLOOR_PREDICT") == "direct":
    # The comparison of everything but the model call: the floor predicts as the API does
    # (models/xgboost_dense.py) instead of through the inplace_predict.
    BOOSTER = dense_booster(BOOSTER)
LABEL = os.environ["FLOOR_MODEL_LABEL"]
MEDIUM = float(os.environ["FLOOR_MEDIUM"])
HIGH = float(os.environ["FLOOR_HIGH"])
GENERIC_LABEL = os.environ["FLOOR_GENERIC_LABEL"]
GenericRow = request_model("churn-generic", from_model(ChurnFeatures))


class FloorBatch(BaseModel):
    """The same constraints as the API's ``ChurnBatchRequest``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rows: Annotated[list[ChurnFeatures], Field(min_length=1)]


class GenericBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rows: Annotated[list[GenericRow], Field(min_length=1)]  # type: ignore[valid-type]


def _matrix(rows: list[Any]) -> np.ndarray:
    return np.asarray(
        [
            [
                math.nan if value is None else float(value)
                for value in map(row.__getattribute__, FEATURE_NAMES)
            ]
            for row in rows
        ],
        dtype=np.float32,
    )


def _predict_generic(rows: list[Any]) -> list[dict[str, object]]:
    outputs = BOOSTER.inplace_predict(_matrix(rows)).tolist()
    return [{"prediction": output, "model_version": GENERIC_LABEL} for output in outputs]


def _predict(rows: list[ChurnFeatures]) -> list[dict[str, object]]:
    out = []
    for row, probability in zip(rows, BOOSTER.inplace_predict(_matrix(rows)), strict=True):
        p = float(probability)
        level = "high" if p >= HIGH else "medium" if p >= MEDIUM else "low"
        out.append(
            {
                "player_id": row.player_id,
                "churn_probability": round(p, 6),
                "risk_level": level,
                "model_version": LABEL,
            }
        )
    return out


def _json(content: object) -> Response:
    return Response(
        json.dumps(content, separators=(",", ":")).encode(), media_type="application/json"
    )


app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


# The body is validated by pydantic-core straight from its bytes (model_validate_json), not by
# FastAPI's body parameter, which decodes the JSON first: the least a correct route does.


@app.post("/predict/churn")
async def predict_one(request: Request) -> Response:
    features = ChurnFeatures.model_validate_json(await request.body())
    return _json(_predict([features])[0])


@app.post("/predict/churn/batch")
async def predict_batch(request: Request) -> Response:
    body = FloorBatch.model_validate_json(await request.body())
    return _json({"predictions": _predict(body.rows), "model_version": LABEL})


@app.post("/predict/churn-generic")
async def predict_generic(request: Request) -> Response:
    row = GenericRow.model_validate_json(await request.body())
    return _json(_predict_generic([row])[0])


@app.post("/predict/churn-generic/batch")
async def predict_generic_batch(request: Request) -> Response:
    body = GenericBatch.model_validate_json(await request.body())
    return _json({"predictions": _predict_generic(body.rows), "model_version": GENERIC_LABEL})
