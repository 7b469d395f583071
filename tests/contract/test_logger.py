"""The ExperimentLogger and Run, end to end on every backend."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.contract.conftest import Backend
from tests.contract.helpers import snapshot
from tracking import ExperimentLogger, InvalidInput, NotFound, RunStatus
from tracking.artifacts.base import sha256_file


@pytest.fixture
def logger(backend: Backend) -> ExperimentLogger:
    # Configured only by TRACKING_URI / ARTIFACT_URI (and AWS_ENDPOINT_URL), as a user would.
    return ExperimentLogger()


@pytest.fixture
def model_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "churn_v3.pkl"
    path.write_bytes(b"model bytes " * 100)
    return path


def test_seed_example_verbatim(logger: ExperimentLogger, model_file: Path) -> None:
    run = logger.log_experiment(
        name="churn_xgboost_v3",
        params={"max_depth": 5, "learning_rate": 0.1},
        metrics={"auc": 0.87, "precision": 0.82},
        artifacts={"model_path": "models/churn_v3.pkl"},
    )
    assert run.status is RunStatus.FINISHED
    assert run.experiment_name == "churn_xgboost_v3"
    assert run.params == {"max_depth": "5", "learning_rate": "0.1"}
    assert run.latest_metrics == {"auc": 0.87, "precision": 0.82}
    artifact = run.artifacts["model_path"]
    digest, size = sha256_file(model_file)
    assert (artifact.sha256, artifact.size) == (digest, size)
    assert artifact.uri.endswith("/model_path/churn_v3.pkl")
    assert logger.get_run(run.run_id) == run
    assert [e.name for e in logger.list_experiments().items] == ["churn_xgboost_v3"]
    downloaded = logger.artifacts.download(artifact.uri, model_file.parent / "copy", digest)
    assert downloaded.read_bytes() == model_file.read_bytes()


def test_start_run_context_manager(logger: ExperimentLogger, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    plot = tmp_path / "roc.png"
    plot.write_bytes(b"\x89PNG fake")
    with logger.start_run(experiment="churn", run_name="xgb-depth5", tags={"team": "ds"}) as run:
        run.log_params({"max_depth": 5})
        run.log_param("eta", 0.3)
        run.set_tag("owner", "me")
        for step in range(20):
            run.log_metric("logloss", 1 / (step + 1), step=step)
        run.log_metrics({"auc": 0.9, "f1": 0.7}, step=3)
        dataset = run.log_dataset("train", data)
        artifact = run.log_artifact(plot)
    stored = logger.get_run(run.run_id)
    assert stored.status is RunStatus.FINISHED
    assert stored.end_time is not None
    assert stored.end_time >= stored.start_time
    assert stored.run_name == "xgb-depth5"
    assert stored.tags == {"team": "ds", "owner": "me"}
    assert stored.params == {"max_depth": "5", "eta": "0.3"}
    assert stored.latest_metrics == {"logloss": 1 / 20, "auc": 0.9, "f1": 0.7}
    assert stored.datasets["train"].digest == sha256_file(data)[0] == dataset.digest
    assert stored.artifacts["roc.png"] == artifact
    history = logger.get_metric_history(run.run_id, "logloss")
    assert [m.step for m in history] == list(range(20))


def test_exception_exit_marks_failed_and_flushes(logger: ExperimentLogger) -> None:
    run = logger.start_run("churn")

    def train() -> None:
        with run:
            run.log_metric("loss", 0.5, step=1)
            raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError, match="training crashed"):
        train()
    stored = logger.get_run(run.run_id)
    assert stored.status is RunStatus.FAILED
    assert stored.latest_metrics == {"loss": 0.5}


def test_buffer_flushes_when_full(backend: Backend) -> None:
    logger = ExperimentLogger(buffer_size=10)
    with logger.start_run("churn") as run:
        for step in range(9):
            run.log_metric("loss", step, step=step)
        assert logger.get_metric_history(run.run_id, "loss") == []
        run.log_metric("loss", 9, step=9)
        assert len(logger.get_metric_history(run.run_id, "loss")) == 10
        run.log_metric("loss", 10)  # default step follows the last one
    assert [m.step for m in logger.get_metric_history(run.run_id, "loss")] == list(range(11))


def test_default_steps_count_up_per_key(logger: ExperimentLogger) -> None:
    with logger.start_run("churn") as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)
        run.log_metric("auc", 0.5)
    assert [(m.step, m.value) for m in logger.get_metric_history(run.run_id, "loss")] == [
        (0, 3.0),
        (1, 2.0),
        (2, 1.0),
    ]
    assert [m.step for m in logger.get_metric_history(run.run_id, "auc")] == [0]


def test_nested_runs(logger: ExperimentLogger) -> None:
    with logger.start_run("sweep", run_name="parent") as parent:
        child = logger.start_run("sweep", run_name="child", parent_run_id=parent.run_id)
        with child:
            child.log_metric("auc", 0.8)
    assert logger.get_run(child.run_id).parent_run_id == parent.run_id
    with pytest.raises(NotFound):
        logger.start_run("sweep", parent_run_id="0" * 32)


def test_search_runs_filter_order_and_pages(logger: ExperimentLogger) -> None:
    specs = [
        ("5", "ds", 0.85),
        ("6", "ml", 0.9),
        ("5", "ml", 0.7),
        ("7", "ds", 0.95),
        ("6", "x", 0.81),
    ]
    ids = {}
    for depth, team, auc in specs:
        with logger.start_run("churn", tags={"team": team}) as run:
            run.log_params({"max_depth": depth})
            run.log_metric("auc", auc)
        ids[auc] = run.run_id
    with logger.start_run("churn") as run:
        run.log_params({"max_depth": "5"})  # no auc: never matches a metric comparison
    page = logger.search_runs(
        "churn",
        filter="metrics.auc > 0.8 and (params.max_depth = '5' or tags.team = 'ds')",
        order_by=["metrics.auc DESC"],
    )
    assert [r.run_id for r in page.items] == [ids[0.95], ids[0.85]]
    assert page.next_token is None

    everything = logger.search_runs("churn", order_by=["metrics.auc ASC"], max_results=2)
    collected = list(everything.items)
    while everything.next_token:
        everything = logger.search_runs(
            "churn", order_by=["metrics.auc ASC"], max_results=2, page_token=everything.next_token
        )
        collected.extend(everything.items)
    aucs = [r.latest_metrics.get("auc") for r in collected]
    assert aucs == [0.7, 0.81, 0.85, 0.9, 0.95, None]

    finished = logger.search_runs("churn", filter="status = 'FINISHED' and params.max_depth != '5'")
    assert {r.run_id for r in finished.items} == {ids[0.9], ids[0.95], ids[0.81]}


@pytest.mark.parametrize(
    "bad_filter",
    [
        "metrics.auc >",
        "metrics.auc > 'x'",
        "(metrics.auc > 1",
        "nope = 1",
        "metrics.auc ~ 1",
        "params.a = 1 and",
        "metrics.auc > 1e999",
    ],
)
def test_search_runs_bad_filter(logger: ExperimentLogger, bad_filter: str) -> None:
    logger.log_experiment("churn", metrics={"auc": 0.5})
    with pytest.raises(InvalidInput):
        logger.search_runs("churn", filter=bad_filter)


def test_search_runs_unknown_experiment(logger: ExperimentLogger) -> None:
    with pytest.raises(NotFound):
        logger.search_runs("missing")


def test_long_metric_history_comes_back_complete(
    logger: ExperimentLogger, backend: Backend
) -> None:
    points = 50_000 if backend.name == "sqlite" else 10_000
    with logger.start_run("volume") as run:
        for step in range(points):
            run.log_metric("loss", math.sin(step), step=step)
    history = logger.get_metric_history(run.run_id, "loss")
    assert len(history) == points
    assert [m.step for m in history] == list(range(points))
    assert history[-1].value == math.sin(points - 1)


# -- bad input: a clear error and an unchanged store ------------------------------------------

BAD_NAMES = ["", "a/b", "../etc", "a..b", "x" * 129, "spa ce", "-lead", "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_experiment_name_writes_nothing(
    logger: ExperimentLogger, backend: Backend, model_file: Path, name: str
) -> None:
    before = snapshot(backend)
    with pytest.raises(InvalidInput, match="experiment name"):
        logger.log_experiment(name=name, params={"a": 1}, artifacts={"m": "models/churn_v3.pkl"})
    with pytest.raises(InvalidInput):
        logger.start_run(name)
    assert snapshot(backend) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": {"a": "x" * 6001}}, "6000"),
        ({"params": {"a/b": 1}}, "param key"),
        ({"metrics": {"auc": float("nan")}}, "finite"),
        ({"metrics": {"auc": float("inf")}}, "finite"),
        ({"metrics": {"auc": float("-inf")}}, "finite"),
        ({"metrics": {"auc": "high"}}, "number"),
        ({"metrics": {"../auc": 1.0}}, "metric key"),
        ({"artifacts": {"model_path": "models/missing.pkl"}}, "does not exist"),
        ({"artifacts": {"../escape": "models/churn_v3.pkl"}}, "artifact name"),
        ({"tags": {"t": "x" * 6001}}, "6000"),
        ({"run_name": "a/b"}, "run name"),
        ({"datasets": {"train": "missing.csv"}}, "does not exist"),
    ],
)
def test_bad_log_experiment_input_writes_nothing(
    logger: ExperimentLogger, backend: Backend, model_file: Path, kwargs: dict, message: str
) -> None:
    logger.log_experiment("existing", params={"a": 1})
    before = snapshot(backend)
    call = {
        "name": "churn",
        "params": {"ok": 1},
        "metrics": {"auc": 0.5},
        "artifacts": {"model_path": "models/churn_v3.pkl"},
    } | kwargs
    with pytest.raises(InvalidInput, match=message):
        logger.log_experiment(**call)
    assert snapshot(backend) == before


def test_bad_active_run_input_writes_nothing(
    logger: ExperimentLogger, backend: Backend, tmp_path: Path
) -> None:
    run = logger.start_run("churn")
    run.log_metric("loss", 1.0, step=0)
    run.flush()
    before = snapshot(backend)
    with pytest.raises(InvalidInput):
        run.log_params({"ok": 1, "bad": "x" * 6001})
    with pytest.raises(InvalidInput):
        run.log_metrics({"ok": 1.0, "bad": float("nan")})
    with pytest.raises(InvalidInput):
        run.log_metric("loss", 1.0, step=-1)
    with pytest.raises(InvalidInput):
        run.log_artifact(tmp_path / "missing.bin")
    with pytest.raises(InvalidInput):
        run.log_artifact(__file__, name="a/b")
    with pytest.raises(InvalidInput):
        run.log_dataset("../x", __file__)
    with pytest.raises(InvalidInput):
        run.set_tags({"a/b": "x"})
    run.flush()
    assert snapshot(backend) == before
    run.end()


def test_a_dropped_run_flushes_its_buffer(logger: ExperimentLogger) -> None:
    import gc

    run = logger.start_run("churn")
    run.log_metric("loss", 0.25, step=3)
    run_id = run.run_id
    del run
    gc.collect()
    assert [(m.step, m.value) for m in logger.get_metric_history(run_id, "loss")] == [(3, 0.25)]
