"""Experiment tracking and a model registry on DynamoDB + S3, or on SQLite + a local folder.

from tracking import ExperimentLogger
logger = ExperimentLogger()          # TRACKING_URI / ARTIFACT_URI, or the embedded default
with logger.start_run(experiment="churn", run_name="xgb-depth5") as run:
    run.log_params({"max_depth": 5})
    run.log_metric("logloss", 0.41, step=10)
"""

from tracking.config import TrackingConfig
from tracking.entities import Artifact, Dataset, Experiment, Metric, Page, Param, RunStatus
from tracking.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    TrackingError,
)
from tracking.logger import ExperimentLogger, Run

__all__ = [
    "AlreadyExists",
    "Artifact",
    "Conflict",
    "Dataset",
    "Experiment",
    "ExperimentLogger",
    "IntegrityError",
    "InvalidInput",
    "Metric",
    "NotFound",
    "Page",
    "Param",
    "Run",
    "RunStatus",
    "StoreUnavailable",
    "TrackingConfig",
    "TrackingError",
]
