"""Experiment tracking and a model registry on DynamoDB + S3, or on SQLite + a local folder.

from tracking import ExperimentLogger
logger = ExperimentLogger()          # TRACKING_URI / ARTIFACT_URI, or the embedded default
with logger.start_run(experiment="churn", run_name="xgb-depth5") as run:
    run.log_params({"max_depth": 5})
    run.log_metric("logloss", 0.41, step=10)
"""

from tracking.config import TrackingConfig
from tracking.entities import (
    AliasChange,
    Artifact,
    Dataset,
    Experiment,
    FeatureSpec,
    Flavor,
    Metric,
    ModelVersion,
    Page,
    Param,
    RegisteredModel,
    RunStatus,
    Stage,
)
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
from tracking.registry import ModelRegistry

__all__ = [
    "AliasChange",
    "AlreadyExists",
    "Artifact",
    "Conflict",
    "Dataset",
    "Experiment",
    "ExperimentLogger",
    "FeatureSpec",
    "Flavor",
    "IntegrityError",
    "InvalidInput",
    "Metric",
    "ModelRegistry",
    "ModelVersion",
    "NotFound",
    "Page",
    "Param",
    "RegisteredModel",
    "Run",
    "RunStatus",
    "Stage",
    "StoreUnavailable",
    "TrackingConfig",
    "TrackingError",
]
