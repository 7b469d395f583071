"""The model registry on every backend: versions, aliases, stages, history, safety."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import xgboost as xgb
from pydantic import BaseModel, Field

from tests.contract.conftest import RACE_BACKENDS, Backend
from tests.contract.helpers import snapshot
from tests.models_fixtures import FEATURES, save_model_files, save_onnx_model, train_logistic
from tracking import (
    Conflict,
    ExperimentLogger,
    IntegrityError,
    InvalidInput,
    ModelRegistry,
    NotFound,
    Stage,
)
from tracking.entities import FeatureSpec, HistoryAction


@pytest.fixture
def logger(backend: Backend) -> ExperimentLogger:
    return ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)


@pytest.fixture
def registry(backend: Backend) -> ModelRegistry:
    return ModelRegistry(store=backend.metadata, artifact_store=backend.artifacts, actor="tester")


@pytest.fixture
def run_id(logger: ExperimentLogger, tmp_path: Path) -> str:
    files = save_model_files(tmp_path / "files")
    run = logger.log_experiment(
        "churn",
        params={"max_depth": 2},
        metrics={"auc": 0.9},
        artifacts={"model_json": files["json"], "model_ubj": files["ubj"], "pickle": files["pkl"]},
    )
    return run.run_id


def _versions(registry: ModelRegistry, run_id: str, count: int) -> list[int]:
    return [registry.register_model("churn", run_id, "model_json").version for _ in range(count)]


def test_register_records_lineage(
    registry: ModelRegistry, logger: ExperimentLogger, run_id: str
) -> None:
    mv = registry.register_model(
        "churn",
        run_id=run_id,
        artifact="model_json",
        flavor="xgboost",
        description="first",
        tags={"team": "ds"},
    )
    run = logger.get_run(run_id)
    assert mv.version == 1
    assert mv.label == "v1"
    assert mv.run_id == run_id
    assert mv.experiment_name == "churn"
    assert mv.artifact_uri == run.artifacts["model_json"].uri
    assert mv.sha256 == run.artifacts["model_json"].sha256
    assert mv.size == run.artifacts["model_json"].size
    assert [spec.name for spec in mv.signature] == FEATURES
    assert mv.stage is Stage.NONE
    assert mv.actor == "tester"
    assert mv.tags == {"team": "ds"}
    assert registry.get_version("churn", 1) == mv
    ubj = registry.register_model("churn", run_id=run_id, artifact="model_ubj")
    assert ubj.version == 2
    model = registry.get_model("churn")
    assert model.latest_version == 2
    assert [v.version for v in registry.list_versions("churn").items] == [2, 1]
    history = registry.history("churn")
    assert [(h.action, h.to_version) for h in history] == [
        (HistoryAction.REGISTER, 1),
        (HistoryAction.REGISTER, 2),
    ]


def test_explicit_signature(registry: ModelRegistry, run_id: str) -> None:
    mv = registry.register_model(
        "churn", run_id, "model_json", signature={"sessions_7d": "int", "playtime_7d": "float"}
    )
    assert [(s.name, s.type) for s in mv.signature] == [
        ("sessions_7d", "int"),
        ("playtime_7d", "float"),
    ]


class _Inputs(BaseModel):
    sessions_7d: Annotated[int, Field(ge=0, le=10_000, description="Sessions in 7 days.")]
    country: Annotated[str | None, Field(min_length=2, max_length=2, pattern="^[A-Z]+$")] = None
    weight: float = 1.5


class _Outputs(BaseModel):
    score: float


def test_a_pydantic_signature_round_trips_with_its_outputs(
    registry: ModelRegistry, run_id: str
) -> None:
    mv = registry.register_model(
        "churn", run_id, "model_json", signature=_Inputs, output_signature=_Outputs
    )
    stored = registry.get_version("churn", mv.version)
    assert stored.signature == mv.signature
    assert stored.output_signature == [FeatureSpec(name="score", type="float")]
    sessions, country, weight = stored.signature
    assert sessions == FeatureSpec(
        name="sessions_7d", type="int", minimum=0, maximum=10_000,
        description="Sessions in 7 days.",
    )  # fmt: skip
    assert country == FeatureSpec(
        name="country", type="str", required=False, min_length=2, max_length=2,
        pattern="^[A-Z]+$",
    )  # fmt: skip
    assert (weight.required, weight.default) == (False, 1.5)


def test_pickle_refused_as_xgboost_and_without_opt_in(
    registry: ModelRegistry, backend: Backend, run_id: str
) -> None:
    before = snapshot(backend)
    with pytest.raises(InvalidInput, match="pickle"):
        registry.register_model("churn", run_id, "pickle", flavor="xgboost")
    with pytest.raises(InvalidInput, match="allow_pickle"):
        registry.register_model("churn", run_id, "pickle", flavor="sklearn")
    with pytest.raises(InvalidInput, match="flavor"):
        registry.register_model("churn", run_id, "model_json", flavor="tensorflow")
    # onnx is a flavor now: an XGBoost JSON file is not an ONNX graph, and nothing is written.
    with pytest.raises(InvalidInput, match="not a valid ONNX model"):
        registry.register_model("churn", run_id, "model_json", flavor="onnx")
    with pytest.raises(InvalidInput, match="pickle"):
        registry.register_model("churn", run_id, "pickle", flavor="onnx")
    with pytest.raises(NotFound):
        registry.get_model("churn")
    assert snapshot(backend) == before
    mv = registry.register_model("churn", run_id, "pickle", flavor="sklearn", allow_pickle=True)
    assert mv.flavor.value == "sklearn"
    with pytest.raises(InvalidInput, match="ALLOW_PICKLE_MODELS"):
        registry.load_model("churn", version=mv.version)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "a/b"}, InvalidInput),
        ({"name": "../x"}, InvalidInput),
        ({"artifact": "missing"}, NotFound),
        ({"run_id": "0" * 32}, NotFound),
        ({"signature": "sessions"}, InvalidInput),
        ({"tags": {"a/b": "x"}}, InvalidInput),
        ({"description": "x" * 5001}, InvalidInput),
    ],
)
def test_bad_registration_writes_nothing(
    registry: ModelRegistry, backend: Backend, run_id: str, kwargs: dict, error: type[Exception]
) -> None:
    before = snapshot(backend)
    call = {"name": "churn", "run_id": run_id, "artifact": "model_json"} | kwargs
    with pytest.raises(error):
        registry.register_model(**call)
    assert snapshot(backend) == before
    with pytest.raises(NotFound):
        registry.get_model("churn")


def test_promote_production_archives_previous(registry: ModelRegistry, run_id: str) -> None:
    _versions(registry, run_id, 3)
    registry.promote("churn", 1, to="production", reason="first")
    registry.promote("churn", 2, to="production")
    assert registry.get_version_by_alias("churn", "production").version == 2
    assert registry.get_version("churn", 1).stage is Stage.ARCHIVED
    assert registry.get_version("churn", 2).stage is Stage.PRODUCTION
    assert registry.get_model("churn").aliases == {"production": 2}
    last = registry.history("churn")[-1]
    assert (last.action, last.alias, last.from_version, last.to_version, last.actor) == (
        HistoryAction.PROMOTE,
        "production",
        1,
        2,
        "tester",
    )
    assert registry.history("churn")[-2].reason == "first"


def test_staging_then_production(registry: ModelRegistry, run_id: str) -> None:
    _versions(registry, run_id, 2)
    registry.promote("churn", 1, to="staging")
    assert registry.get_version("churn", 1).stage is Stage.STAGING
    registry.promote("churn", 2, to="staging")
    assert registry.get_version("churn", 1).stage is Stage.NONE
    registry.promote("churn", 2, to="production")
    assert registry.get_version("churn", 2).stage is Stage.PRODUCTION
    assert registry.get_model("churn").aliases == {"production": 2}
    with pytest.raises(Conflict, match="production"):
        registry.promote("churn", 2, to="staging")


def test_custom_alias_moves_no_stage(registry: ModelRegistry, run_id: str) -> None:
    _versions(registry, run_id, 2)
    registry.promote("churn", 2, to="challenger")
    assert registry.get_version_by_alias("churn", "challenger").stage is Stage.NONE
    assert registry.get_model("churn").aliases == {"challenger": 2}


def test_rollback(registry: ModelRegistry, run_id: str) -> None:
    _versions(registry, run_id, 3)
    with pytest.raises(Conflict, match="roll back"):
        registry.rollback("churn")
    for number in (1, 2, 3):
        registry.promote("churn", number, to="production")
    assert registry.rollback("churn", reason="bad auc").version == 2
    assert registry.get_version("churn", 3).stage is Stage.ARCHIVED
    assert registry.get_version("churn", 2).stage is Stage.PRODUCTION
    assert registry.rollback("churn").version == 1
    with pytest.raises(Conflict):
        registry.rollback("churn")
    assert registry.get_version_by_alias("churn", "production").version == 1
    rollbacks = [h for h in registry.history("churn") if h.action is HistoryAction.ROLLBACK]
    assert [(h.from_version, h.to_version, h.reason) for h in rollbacks] == [
        (3, 2, "bad auc"),
        (2, 1, None),
    ]


def test_archive(registry: ModelRegistry, run_id: str) -> None:
    _versions(registry, run_id, 3)
    registry.promote("churn", 1, to="production")
    registry.promote("churn", 2, to="staging")
    with pytest.raises(Conflict, match="production"):
        registry.archive("churn", 1)
    registry.archive("churn", 2, reason="superseded")
    assert registry.get_version("churn", 2).stage is Stage.ARCHIVED
    assert registry.get_model("churn").aliases == {"production": 1}
    registry.archive("churn", 3)
    assert registry.history("churn")[-1].action is HistoryAction.ARCHIVE


def test_missing_things_are_not_found(registry: ModelRegistry, run_id: str) -> None:
    with pytest.raises(NotFound):
        registry.get_model("nope")
    with pytest.raises(NotFound):
        registry.promote("nope", 1, to="production")
    _versions(registry, run_id, 1)
    with pytest.raises(NotFound):
        registry.promote("churn", 9, to="production")
    with pytest.raises(NotFound):
        registry.get_version_by_alias("churn", "production")
    with pytest.raises(InvalidInput):
        registry.promote("churn", 0, to="production")
    with pytest.raises(InvalidInput):
        registry.promote("churn", 1, to="../prod")


def test_list_models_with_aliases_paginates(registry: ModelRegistry, run_id: str) -> None:
    for name in ("c", "a", "b"):
        registry.register_model(name, run_id, "model_json")
    registry.promote("b", 1, to="production")
    first = registry.list_models(max_results=2)
    assert [m.name for m in first.items] == ["a", "b"]
    assert first.items[1].aliases == {"production": 1}
    second = registry.list_models(max_results=2, page_token=first.next_token)
    assert [m.name for m in second.items] == ["c"]
    assert second.next_token is None


def test_descriptions_and_tags(registry: ModelRegistry, run_id: str) -> None:
    _versions(registry, run_id, 1)
    model = registry.update_model("churn", description="player churn", tags={"owner": "ds"})
    assert (model.description, model.tags) == ("player churn", {"owner": "ds"})
    version = registry.update_version("churn", 1, tags={"validated": "yes"})
    assert version.tags == {"validated": "yes"}
    assert registry.update_version("churn", 1, description="ok").tags == {"validated": "yes"}


def test_load_verifies_sha256(
    registry: ModelRegistry, backend: Backend, run_id: str, tmp_path: Path
) -> None:
    registry.register_model("churn", run_id, "model_ubj")
    registry.promote("churn", 1, to="production")
    mv, booster = registry.load_model("churn")
    assert mv.version == 1
    row = xgb.DMatrix(np.array([[0.9, 0.5, 0.1]]), feature_names=FEATURES)
    assert 0.0 <= float(booster.predict(row)[0]) <= 1.0
    _tamper(backend, mv.artifact_uri, tmp_path)
    with pytest.raises(IntegrityError):
        registry.load_model("churn")


def test_onnx_load_verifies_sha256(
    registry: ModelRegistry, logger: ExperimentLogger, backend: Backend, tmp_path: Path
) -> None:
    pipeline = train_logistic()
    path = save_onnx_model(tmp_path / "model.onnx", pipeline)
    run = logger.log_experiment("churn", artifacts={"model": path})
    mv = registry.register_model("team-onnx", run.run_id, "model", flavor="onnx")
    assert mv.flavor.value == "onnx"
    registry.promote("team-onnx", 1, to="production")
    loaded, session = registry.load_model("team-onnx")
    assert loaded.sha256 == mv.sha256
    rows = np.array([[0.9, 0.5, 0.1], [0.1, 0.2, 0.3]], dtype=np.float32)
    [probabilities] = session.run(["probabilities"], {"input": rows})
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(rows), atol=1e-5)
    _tamper(backend, mv.artifact_uri, tmp_path)
    with pytest.raises(IntegrityError):
        registry.load_model("team-onnx")


def _tamper(backend: Backend, uri: str, tmp_path: Path) -> None:
    if uri.startswith("file://"):
        Path(uri[len("file://") :]).write_bytes(b"{tampered}")
        return
    import boto3

    bucket, key = uri[len("s3://") :].split("/", 1)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b"{tampered}")


@RACE_BACKENDS
def test_concurrent_registrations_get_distinct_numbers(
    registry: ModelRegistry, run_id: str
) -> None:
    numbers: list[int] = []
    errors: list[Exception] = []

    def worker() -> None:
        try:
            numbers.append(registry.register_model("churn", run_id, "model_json").version)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
    assert registry.get_model("churn").latest_version == 6
