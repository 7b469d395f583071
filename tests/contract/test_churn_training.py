"""The churn training pipeline end to end, into SQLite and into DynamoDB + S3 on moto."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

from models.base import load_predictor
from models.churn.features import FEATURE_NAMES, ChurnFeatures
from models.churn.train import TrainConfig, app, run_training
from tests.contract.conftest import Backend
from tracking import ExperimentLogger, InvalidInput, ModelRegistry, Stage
from tracking.monitoring.reports import load_profile

SMALL = TrainConfig(rows=3000, n_estimators=60, early_stopping_rounds=15, seed=3)
PLOTS = ("roc", "precision_recall", "calibration", "feature_importance")


@pytest.fixture
def logger(backend: Backend) -> ExperimentLogger:
    return ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)


@pytest.fixture
def registry(backend: Backend) -> ModelRegistry:
    return ModelRegistry(store=backend.metadata, artifact_store=backend.artifacts, actor="trainer")


def _png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert raw[12:16] == b"IHDR"
    return struct.unpack(">II", raw[16:24])


@pytest.mark.parametrize("backend", ["sqlite", "moto"], indirect=True)
def test_training_tracks_registers_and_promotes(
    logger: ExperimentLogger, registry: ModelRegistry, backend: Backend, tmp_path: Path
) -> None:
    result = run_training(SMALL, promote="production", logger=logger, registry=registry,
                          show_progress=False, data_dir=tmp_path / "data")  # fmt: skip
    run = logger.get_run(result.run_id)
    assert run.status.value == "FINISHED"
    assert run.params["max_depth"] == "5"
    for key in ("test_auc", "test_precision", "test_recall", "test_f1", "test_logloss",
                "test_brier", "validation_auc", "validation_logloss", "train_auc",
                "train_logloss"):  # fmt: skip
        assert key in run.latest_metrics, key
    rounds = logger.get_metric_history(run.run_id, "validation_auc")
    assert [m.step for m in rounds] == list(range(len(rounds)))
    assert len(rounds) > result.best_iteration
    assert set(run.datasets) == {"train", "validation", "test"}
    assert len({d.digest for d in run.datasets.values()}) == 3
    assert {"model", "feature_schema", "model_card", *PLOTS} <= set(run.artifacts)

    for name in (*PLOTS, "model_card"):
        artifact = run.artifacts[name]
        local = backend.artifacts.download(artifact.uri, tmp_path / "got" / name, artifact.sha256)
        if name == "model_card":
            card = local.read_text()
            assert "## Intended use" in card
            assert "## Limits" in card
            assert "test_auc" in card
        else:
            width, height = _png_size(local)
            assert width > 100
            assert height > 100
            assert matplotlib.image.imread(local, format="png").shape[:2] == (height, width)

    version = result.version
    assert version is not None
    assert version.stage is Stage.PRODUCTION
    # The drift profile: logged with the run, named by the version, read back verified.
    assert version.tags["profile_artifact"] == "profile"
    profile = load_profile(registry, version.name, version.version)
    assert profile is not None
    assert set(profile["features"]) == set(FEATURE_NAMES)
    assert profile["score"]["count"] == int(SMALL.rows * 0.15)  # the validation split
    assert {spec["count"] for spec in profile["features"].values()} == {int(SMALL.rows * 0.7)}
    assert [s.name for s in version.signature] == ["player_id", *FEATURE_NAMES]
    assert [s.name for s in version.output_signature] == [
        "player_id", "churn_probability", "risk_level", "model_version"
    ]  # fmt: skip
    assert version.metadata["risk_thresholds"] == result.thresholds.as_dict()
    predictor = load_predictor(registry, "churn")
    assert predictor.label == "v1"
    answers = predictor.predict([
        ChurnFeatures(player_id="gone", sessions_7d=0, playtime_7d=0, iap_count=0,
                      days_since_last_login=21, sessions_prev_7d=9),
        ChurnFeatures(player_id="loyal", sessions_7d=30, playtime_7d=1500, iap_count=4,
                      friends_count=40, days_since_last_login=0, sessions_prev_7d=28),
    ])  # fmt: skip
    assert [a.player_id for a in answers] == ["gone", "loyal"]
    assert answers[0].churn_probability > answers[1].churn_probability
    assert all(0 <= a.churn_probability <= 1 for a in answers)
    assert answers[0].risk_level == "high"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_same_seed_same_metrics(
    logger: ExperimentLogger, registry: ModelRegistry, tmp_path: Path
) -> None:
    first = run_training(SMALL, logger=logger, registry=registry, show_progress=False,
                         data_dir=tmp_path / "a")  # fmt: skip
    second = run_training(SMALL, logger=logger, registry=registry, show_progress=False,
                          data_dir=tmp_path / "b")  # fmt: skip
    assert first.test_metrics == second.test_metrics
    assert first.thresholds == second.thresholds
    assert logger.get_run(first.run_id).datasets["train"].digest == (
        logger.get_run(second.run_id).datasets["train"].digest
    )
    assert (first.version.version, second.version.version) == (1, 2)  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_default_data_reaches_the_quality_bar(
    logger: ExperimentLogger, registry: ModelRegistry, tmp_path: Path
) -> None:
    result = run_training(TrainConfig(), logger=logger, registry=registry, show_progress=False,
                          data_dir=tmp_path)  # fmt: skip
    assert result.test_metrics["test_auc"] >= 0.80
    assert result.test_metrics["test_brier"] < 0.15


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sweep_registers_the_best_child(
    logger: ExperimentLogger, registry: ModelRegistry, tmp_path: Path
) -> None:
    config = TrainConfig(rows=2000, n_estimators=30, early_stopping_rounds=10, seed=5)
    result = run_training(config, sweep=True, promote="staging", logger=logger,
                          registry=registry, show_progress=False, data_dir=tmp_path)  # fmt: skip
    runs = logger.search_runs("churn", max_results=100).items
    parent = next(r for r in runs if r.run_name == "sweep")
    children = [r for r in runs if r.parent_run_id == parent.run_id]
    assert len(children) == 6
    best = max(children, key=lambda r: r.latest_metrics["validation_best_auc"])
    assert result.run_id == best.run_id
    assert parent.tags["best_run_id"] == best.run_id
    assert result.version is not None
    assert result.version.run_id == best.run_id
    assert result.version.stage is Stage.STAGING


def test_version_without_thresholds_is_refused(tmp_path: Path) -> None:
    from models.churn.predictor import ChurnPredictor
    from tests.models_fixtures import train_booster
    from tracking.entities import ModelVersion

    version = ModelVersion(
        name="churn",
        version=1,
        run_id="r",
        experiment_name="churn",
        artifact_name="model",
        artifact_uri="file:///x",
        sha256="0" * 64,
        size=1,
        flavor="xgboost",
        created_at=0,
        actor="a",
    )
    with pytest.raises(InvalidInput, match="risk_thresholds"):
        ChurnPredictor.from_version(version, train_booster())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "10"], "--rows"),
        (["--learning-rate", "0"], "--learning-rate"),
        (["--max-depth", "0"], "--max-depth"),
        (["--n-estimators", "-5"], "--n-estimators"),
        (["--promote", "archived"], "--promote"),
        (["--rows", "many"], "--rows"),
    ],
)
def test_bad_options_are_clear_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not Path(".tracking").exists()  # nothing trained, nothing written


def test_cli_trains_into_the_embedded_store() -> None:
    result = CliRunner().invoke(
        app, ["--rows", "2000", "--n-estimators", "20", "--promote", "production", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "registered churn v1 (stage production)" in result.output
    assert ModelRegistry().get_version_by_alias("churn", "production").version == 1
