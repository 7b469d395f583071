"""The churn baseline end to end: scikit-learn -> ONNX -> tracker and registry -> served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from models import catalog
from models.churn import compare
from models.churn.features import FEATURE_NAMES, ChurnFeatures, signature
from models.churn.predictor import ChurnPredictor
from models.churn.train import TrainConfig, prepare_data
from models.churn.train import run_training as train_xgboost
from models.churn_baseline.train import (
    PARITY_TOLERANCE,
    BaselineConfig,
    ParityError,
    fit,
    parity,
    run_training,
    to_onnx,
)
from tests.contract.conftest import Backend
from tracking import ExperimentLogger, ModelRegistry, Stage
from tracking.entities import Flavor

SMALL = BaselineConfig(rows=2000, seed=3)
ROW = ChurnFeatures(player_id="p_1", sessions_7d=1, playtime_7d=12.5, iap_count=0,
                    days_since_last_login=9, friends_count=None)  # fmt: skip
CHURN_METRICS = ("test_auc", "test_precision", "test_recall", "test_f1", "test_logloss",
                 "test_brier", "validation_best_auc", "train_seconds")  # fmt: skip


@pytest.fixture
def logger(backend: Backend) -> ExperimentLogger:
    return ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)


@pytest.fixture
def registry(backend: Backend) -> ModelRegistry:
    return ModelRegistry(store=backend.metadata, artifact_store=backend.artifacts, actor="trainer")


@pytest.mark.parametrize("backend", ["sqlite", "moto"], indirect=True)
def test_baseline_is_tracked_registered_promoted_and_served(
    logger: ExperimentLogger, registry: ModelRegistry, tmp_path: Path
) -> None:
    result = run_training(SMALL, promote="production", logger=logger, registry=registry,
                          data_dir=tmp_path / "data")  # fmt: skip
    run = logger.get_run(result.run_id)
    assert run.experiment_name == "churn"
    assert run.tags["model_type"] == "logistic_regression"
    assert run.params["C"] == "1.0"
    for key in (*CHURN_METRICS, "onnx_max_abs_diff"):
        assert key in run.latest_metrics, key
    assert 0.0 <= run.latest_metrics["onnx_max_abs_diff"] <= PARITY_TOLERANCE
    assert run.latest_metrics["test_auc"] > 0.75  # the synthetic churn signal is learnable
    assert set(run.datasets) == {"train", "validation", "test"}
    assert {"model", "feature_schema", "roc", "calibration"} <= set(run.artifacts)

    version = registry.get_version_by_alias("churn-baseline", "production")
    assert (version.version, version.flavor, version.stage) == (1, Flavor.ONNX, Stage.PRODUCTION)
    assert version.signature == signature()
    assert version.metadata["feature_names"] == list(FEATURE_NAMES)

    predictor = catalog.load_predictor(registry, "churn-baseline")
    assert isinstance(predictor, ChurnPredictor)
    # The same data and config refit the same pipeline: the served answer is scikit-learn's.
    pipeline = fit(prepare_data(SMALL.rows, SMALL.seed, tmp_path / "data").train, SMALL)
    row = np.array([[np.nan if (v := getattr(ROW, n)) is None else v for n in FEATURE_NAMES]])
    expected = float(pipeline.predict_proba(row)[0, 1])
    [answer] = predictor.predict_records([ROW])
    assert answer["player_id"] == "p_1"
    assert answer["model_version"] == "v1"
    assert answer["churn_probability"] == pytest.approx(expected, abs=1e-5)
    assert answer["risk_level"] == predictor.thresholds.level(answer["churn_probability"])


def test_a_conversion_that_drifts_from_scikit_learn_fails_training(tmp_path: Path) -> None:
    splits = prepare_data(SMALL.rows, SMALL.seed, tmp_path / "data")
    pipeline = fit(splits.train, SMALL)
    raw = to_onnx(pipeline)
    assert parity(pipeline, raw, splits.validation.features) <= PARITY_TOLERANCE
    pipeline.named_steps["classify"].intercept_ += 0.01  # sklearn moves, the ONNX graph does not
    with pytest.raises(ParityError, match="differ"):
        parity(pipeline, raw, splits.validation.features)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_compare_reads_both_model_types_from_the_tracker(
    logger: ExperimentLogger, registry: ModelRegistry, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(compare.app, []).exit_code == 1  # nothing tracked yet
    xgb = train_xgboost(TrainConfig(rows=2000, n_estimators=15, early_stopping_rounds=5, seed=3),
                        logger=logger, registry=registry, show_progress=False,
                        data_dir=tmp_path / "data")  # fmt: skip
    baseline = run_training(SMALL, logger=logger, registry=registry, data_dir=tmp_path / "data")
    runs = compare.latest_runs(logger)
    assert {t: r.run_id for t, r in runs.items()} == {
        "xgboost": xgb.run_id,
        "logistic_regression": baseline.run_id,
    }
    result = runner.invoke(compare.app, [])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| metric | xgboost | logistic_regression |"
    auc = next(line for line in lines if line.startswith("| test_auc |"))
    assert f"{xgb.test_metrics['test_auc']:.4f}" in auc
    assert f"{baseline.test_metrics['test_auc']:.4f}" in auc
    assert auc.count("**") == 2  # the better one is bold
