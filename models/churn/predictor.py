"""Serving predictions from a registered churn version.

Single rows and batches use ``Booster.inplace_predict`` on a NumPy array: no DMatrix is built per
request, and ``models.xgboost_dense`` skips the wrapper's per-call work. The risk thresholds come
from the version's registry metadata, written by training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from models.churn.evaluation import RiskThresholds
from models.churn.features import FEATURE_NAMES, ChurnFeatures
from models.tabular import feature_matrix
from tracking import InvalidInput, ModelVersion

#: XGBoost threads per prediction (see ``ChurnPredictor.from_version``).
SERVING_THREADS = 1
WARM_UP_ROW = ChurnFeatures(player_id="warm_up", sessions_7d=3, playtime_7d=42.0, iap_count=0)


class ChurnPrediction(BaseModel):
    model_config = ConfigDict(frozen=True)

    player_id: str
    churn_probability: float
    risk_level: str
    model_version: str


class ChurnPredictor:
    """A loaded, verified churn version and its thresholds."""

    def __init__(self, version: ModelVersion, booster: Any, thresholds: RiskThresholds) -> None:
        self.version = version
        self.booster = booster
        self.thresholds = thresholds

    @classmethod
    def from_version(cls, version: ModelVersion, booster: Any) -> ChurnPredictor:
        """Wrap a loaded booster.

        Raises:
            InvalidInput: the version has no risk thresholds, or its features do not match.
        """
        raw: Any = version.metadata.get("risk_thresholds")
        try:
            thresholds = RiskThresholds(medium=float(raw["medium"]), high=float(raw["high"]))
        except (TypeError, KeyError, ValueError):
            raise InvalidInput(
                f"{version.name} {version.label} has no risk_thresholds in its registry metadata"
            ) from None
        names = booster.feature_names
        if names is not None and tuple(names) != FEATURE_NAMES:
            raise InvalidInput(
                f"{version.name} {version.label} expects features {names}, not {FEATURE_NAMES}"
            )
        if hasattr(booster, "set_param"):
            # One thread per prediction. The server handles one request at a time per worker,
            # and for a few rows OpenMP's thread team costs far more than it saves: on a busy
            # 2-core host, inplace_predict of 1 row took 4.9 ms with the default (all cores)
            # against 0.4 ms with one thread (bench/serving_bench.py). Results are identical:
            # threads split rows, never a row's trees.
            booster.set_param({"nthread": SERVING_THREADS})
            # Here, not at import: only an XGBoost model needs xgboost imported.
            from models.xgboost_dense import dense_booster

            booster = dense_booster(booster)
        return cls(version, booster, thresholds)

    @property
    def label(self) -> str:
        return self.version.label

    def predict(self, rows: Sequence[ChurnFeatures]) -> list[ChurnPrediction]:
        """Predict a batch in one call; results are in the order of ``rows``."""
        # The records are built by this class from validated values: no need to validate again.
        return [ChurnPrediction.model_construct(**record) for record in self.predict_records(rows)]

    def predict_records(self, rows: Sequence[ChurnFeatures]) -> list[dict[str, Any]]:
        """Like ``predict``, as plain dicts (the API serialises them without a model per row)."""
        if not rows:
            return []
        # Attributes read directly: the same values as ``to_row``, without a model_dump per row.
        matrix = feature_matrix(rows, FEATURE_NAMES)
        # tolist() gives the same Python floats as float() on each float32, in one C call.
        probabilities: list[float] = self.booster.inplace_predict(matrix).tolist()
        level = self.thresholds.level
        label = self.version.label
        return [
            {
                "player_id": row.player_id,
                "churn_probability": round(probability, 6),
                "risk_level": level(probability),
                "model_version": label,
            }
            for row, probability in zip(rows, probabilities, strict=True)
        ]

    def predict_one(self, row: ChurnFeatures) -> ChurnPrediction:
        return self.predict([row])[0]

    def warm_up(self) -> ChurnPrediction:
        """One prediction, so the first request does not pay for lazy initialisation."""
        return self.predict_one(WARM_UP_ROW)
