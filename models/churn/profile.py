"""The churn training profile: what drift detection compares the live prediction log with.

Per feature (``FEATURE_NAMES``) the training data's decile bins, percentiles and null rate, and
the same for the model's scores on the validation split; logged as the run's ``profile``
artifact (``profile.json``). The registered version names it in its ``profile_artifact`` tag, so
``tracking drift`` and ``GET /models/{name}/drift`` find it from the version alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models.churn.features import FEATURE_NAMES
from tracking.monitoring.drift import build_profile
from tracking.monitoring.reports import PROFILE_ARTIFACT, PROFILE_TAG

#: The tag to register the version with.
PROFILE_TAGS = {PROFILE_TAG: PROFILE_ARTIFACT}


def training_profile(features: np.ndarray, validation_scores: np.ndarray) -> dict[str, Any]:
    """The profile of a training matrix (rows x ``FEATURE_NAMES``, NaN where missing)."""
    columns = {name: features[:, index] for index, name in enumerate(FEATURE_NAMES)}
    return build_profile(columns, scores=validation_scores)


def log_profile(
    run: Any, features: np.ndarray, validation_scores: np.ndarray, folder: Path
) -> Path:
    """Write ``profile.json`` into ``folder`` and log it as the run's ``profile`` artifact."""
    path = folder / "profile.json"
    path.write_text(json.dumps(training_profile(features, validation_scores)))
    run.log_artifact(path, name=PROFILE_ARTIFACT)
    return path
