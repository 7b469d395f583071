"""The MetadataStore contract, run against every backend."""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.contract.conftest import RACE_BACKENDS, Backend
from tracking.entities import Artifact, Dataset, Metric, RunStatus
from tracking.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from tracking.stores.ports.metadata import split_batch


def _run(backend: Backend, experiment: str = "exp", start_time: int = 1000, **kwargs: object):
    store = backend.metadata
    exp = store.get_or_create_experiment(experiment)
    return store.create_run(
        experiment=exp,
        run_id=uuid.uuid4().hex,
        run_name=kwargs.get("run_name", "r"),  # type: ignore[arg-type]
        tags=kwargs.get("tags", {}),  # type: ignore[arg-type]
        parent_run_id=kwargs.get("parent_run_id"),  # type: ignore[arg-type]
        start_time=start_time,
    )


def test_create_and_get_experiment(backend: Backend) -> None:
    created = backend.metadata.create_experiment("churn", {"team": "ds"})
    fetched = backend.metadata.get_experiment("churn")
    assert fetched == created
    assert fetched.tags == {"team": "ds"}


def test_duplicate_experiment_is_already_exists(backend: Backend) -> None:
    backend.metadata.create_experiment("churn")
    with pytest.raises(AlreadyExists):
        backend.metadata.create_experiment("churn")
    assert len(backend.metadata.list_experiments().items) == 1


@RACE_BACKENDS
def test_concurrent_get_or_create_gives_one_experiment(backend: Backend) -> None:
    results: list[str] = []

    def worker() -> None:
        results.append(backend.metadata.get_or_create_experiment("race").experiment_id)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert [e.name for e in backend.metadata.list_experiments().items] == ["race"]


def test_missing_experiment_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.metadata.get_experiment("nope")
    with pytest.raises(NotFound):
        backend.metadata.list_runs("nope")


def test_list_experiments_paginates_in_name_order(backend: Backend) -> None:
    names = [f"exp-{i:02d}" for i in range(7)]
    for name in reversed(names):
        backend.metadata.create_experiment(name)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = backend.metadata.list_experiments(3, token)
        pages += 1
        assert len(page.items) <= 3
        seen.extend(e.name for e in page.items)
        if page.next_token is None:
            break
        token = page.next_token
    assert seen == names
    assert pages == 3


@pytest.mark.parametrize("token", ["garbage!", "eyJ4IjoxfQ"])
def test_bad_page_token_is_invalid_input(backend: Backend, token: str) -> None:
    backend.metadata.create_experiment("a")
    with pytest.raises(InvalidInput):
        backend.metadata.list_experiments(10, token)


def test_run_lifecycle(backend: Backend) -> None:
    run = _run(backend, tags={"team": "ds"})
    assert run.status is RunStatus.RUNNING
    assert run.tags == {"team": "ds"}
    assert run.experiment_name == "exp"
    backend.metadata.set_run_status(run.run_id, RunStatus.FINISHED, 2000)
    stored = backend.metadata.get_run(run.run_id)
    assert stored.status is RunStatus.FINISHED
    assert stored.end_time == 2000
    assert stored.start_time == 1000


def test_missing_run_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.metadata.get_run("0" * 32)
    with pytest.raises(NotFound):
        backend.metadata.set_run_status("0" * 32, RunStatus.FINISHED, 1)
    with pytest.raises(NotFound):
        backend.metadata.log_batch("0" * 32, params={"a": "1"})
    with pytest.raises(NotFound):
        backend.metadata.get_metric_history("0" * 32, "loss")


def test_duplicate_run_id_is_already_exists(backend: Backend) -> None:
    run = _run(backend)
    exp = backend.metadata.get_experiment("exp")
    with pytest.raises(AlreadyExists):
        backend.metadata.create_run(
            experiment=exp,
            run_id=run.run_id,
            run_name="x",
            tags={},
            parent_run_id=None,
            start_time=5,
        )
    assert backend.metadata.get_run(run.run_id).run_name == "r"


def test_parent_run(backend: Backend) -> None:
    parent = _run(backend)
    child = _run(backend, parent_run_id=parent.run_id)
    assert backend.metadata.get_run(child.run_id).parent_run_id == parent.run_id
    with pytest.raises(NotFound):
        _run(backend, parent_run_id="f" * 32)


def test_log_batch_params_tags_metrics(backend: Backend) -> None:
    run = _run(backend)
    backend.metadata.log_batch(
        run.run_id,
        params={"max_depth": "5", "lr": "0.1"},
        tags={"team": "ds"},
        metrics=[
            Metric(key="loss", value=0.9, step=0, timestamp=10),
            Metric(key="loss", value=0.5, step=1, timestamp=11),
            Metric(key="auc", value=0.8, step=0, timestamp=10),
        ],
    )
    stored = backend.metadata.get_run(run.run_id)
    assert stored.params == {"max_depth": "5", "lr": "0.1"}
    assert stored.tags == {"team": "ds"}
    assert stored.latest_metrics == {"loss": 0.5, "auc": 0.8}
    assert stored.metrics["loss"].step == 1


def test_params_are_write_once_and_conflict_writes_nothing(backend: Backend) -> None:
    run = _run(backend)
    backend.metadata.log_batch(run.run_id, params={"a": "1"})
    backend.metadata.log_batch(run.run_id, params={"a": "1"})  # same value: a no-op
    before = backend.metadata.get_run(run.run_id)
    with pytest.raises(Conflict):
        backend.metadata.log_batch(
            run.run_id,
            params={"b": "2", "a": "changed"},
            tags={"t": "v"},
            metrics=[Metric(key="m", value=1.0, step=0, timestamp=1)],
        )
    after = backend.metadata.get_run(run.run_id)
    assert after == before
    assert backend.metadata.get_metric_history(run.run_id, "m").items == []


def test_tags_can_be_overwritten(backend: Backend) -> None:
    run = _run(backend)
    backend.metadata.set_tag(run.run_id, "stage", "a")
    backend.metadata.set_tag(run.run_id, "stage", "b")
    assert backend.metadata.get_run(run.run_id).tags == {"stage": "b"}


def test_same_step_replaces_and_never_duplicates(backend: Backend) -> None:
    run = _run(backend)
    points = [Metric(key="loss", value=float(i), step=i, timestamp=100 + i) for i in range(30)]
    backend.metadata.log_batch(run.run_id, metrics=points)
    backend.metadata.log_batch(run.run_id, metrics=points)  # a retried batch
    backend.metadata.log_metric(run.run_id, Metric(key="loss", value=-1.0, step=3, timestamp=500))
    history = backend.metadata.get_metric_history(run.run_id, "loss").items
    assert [m.step for m in history] == list(range(30))
    assert history[3].value == -1.0


def test_latest_metric_is_highest_step_not_last_written(backend: Backend) -> None:
    run = _run(backend)
    backend.metadata.log_metric(run.run_id, Metric(key="loss", value=0.1, step=10, timestamp=5))
    backend.metadata.log_metric(run.run_id, Metric(key="loss", value=0.9, step=2, timestamp=99))
    assert backend.metadata.get_run(run.run_id).metrics["loss"] == Metric(
        key="loss", value=0.1, step=10, timestamp=5
    )
    backend.metadata.log_metric(run.run_id, Metric(key="loss", value=0.05, step=10, timestamp=6))
    assert backend.metadata.get_run(run.run_id).latest_metrics["loss"] == 0.05


def test_metric_history_pages_in_step_order(backend: Backend) -> None:
    run = _run(backend)
    points = [Metric(key="loss", value=1.0 / (i + 1), step=i, timestamp=i) for i in range(250)]
    backend.metadata.log_batch(run.run_id, metrics=list(reversed(points)))
    page = backend.metadata.get_metric_history(run.run_id, "loss", 100)
    assert len(page.items) == 100
    assert page.next_token is not None
    assert list(backend.metadata.iter_metric_history(run.run_id, "loss")) == points
    assert backend.metadata.get_metric_history(run.run_id, "other").items == []


def test_list_runs_newest_first_and_paginated(backend: Backend) -> None:
    ids = [_run(backend, start_time=1000 + i).run_id for i in range(5)]
    _run(backend, experiment="elsewhere")
    seen: list[str] = []
    token = None
    while True:
        page = backend.metadata.list_runs("exp", 2, token)
        seen.extend(run.run_id for run in page.items)
        if page.next_token is None:
            break
        token = page.next_token
    assert seen == list(reversed(ids))


def test_list_runs_returns_complete_runs(backend: Backend) -> None:
    run = _run(backend)
    backend.metadata.log_batch(
        run.run_id,
        params={"p": "1"},
        tags={"t": "x"},
        metrics=[Metric(key="auc", value=0.8, step=0, timestamp=1)],
    )
    (listed,) = backend.metadata.list_runs("exp").items
    assert listed == backend.metadata.get_run(run.run_id)
    assert listed.params == {"p": "1"}
    assert listed.latest_metrics == {"auc": 0.8}


def test_datasets_and_artifact_records(backend: Backend) -> None:
    run = _run(backend)
    dataset = Dataset(
        name="train",
        uri="file:///data/train.csv",
        digest="ab" * 32,
        digest_algorithm="sha256",
        size=10,
        logged_at=5,
    )
    backend.metadata.log_dataset(run.run_id, dataset)
    newer = dataset.model_copy(update={"digest": "cd" * 32})
    backend.metadata.log_dataset(run.run_id, newer)
    artifact = Artifact(
        name="model", uri="file:///x/model.json", sha256="ef" * 32, size=3, created_at=6
    )
    backend.metadata.log_artifact(run.run_id, artifact)
    with pytest.raises(AlreadyExists):
        backend.metadata.log_artifact(run.run_id, artifact.model_copy(update={"size": 4}))
    stored = backend.metadata.get_run(run.run_id)
    assert stored.datasets == {"train": newer}
    assert stored.artifacts == {"model": artifact}


def test_many_params_and_metrics_on_one_run(backend: Backend) -> None:
    """Hundreds of keys must not grow one item or row past a backend limit."""
    run = _run(backend)
    params = {f"p{i:03d}": "x" * 6000 for i in range(120)}
    for _, chunk, _ in split_batch(params=params):  # 100 params per request at most
        backend.metadata.log_batch(run.run_id, params=chunk)
    backend.metadata.log_batch(
        run.run_id,
        metrics=[Metric(key=f"m{i:03d}", value=i, step=0, timestamp=1) for i in range(300)],
    )
    stored = backend.metadata.get_run(run.run_id)
    assert stored.params == params
    assert len(stored.metrics) == 300
