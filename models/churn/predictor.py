"""Serving predictions from a registered churn version.

Single rows and batches use ``Booster.inplace_predict`` on a NumPy array: no DMatrix is built per
request. The risk thresholds come from the version's registry metadata, written by training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from models.churn.evaluation import RiskThresholds
from models.churn.features import FEATURE_NAMES, ChurnFeatures, to_row
from tracking import InvalidInput, ModelVersion

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
        return cls(version, booster, thresholds)

    @property
    def label(self) -> str:
        return self.version.label

    def predict(self, rows: Sequence[ChurnFeatures]) -> list[ChurnPrediction]:
        """Predict a batch in one call; results are in the order of ``rows``."""
        if not rows:
            return []
        matrix = np.asarray([to_row(row) for row in rows], dtype=np.float32)
        probabilities = self.booster.inplace_predict(matrix)
        return [
            ChurnPrediction(
                player_id=row.player_id,
                churn_probability=round(float(probability), 6),
                risk_level=self.thresholds.level(float(probability)),
                model_version=self.version.label,
            )
            for row, probability in zip(rows, probabilities, strict=True)
        ]

    def predict_one(self, row: ChurnFeatures) -> ChurnPrediction:
        return self.predict([row])[0]

    def warm_up(self) -> ChurnPrediction:
        """One prediction, so the first request does not pay for lazy initialisation."""
        return self.predict_one(WARM_UP_ROW)
