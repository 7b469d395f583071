"""Per-request limits of ``log_batch`` on every backend, and the SDK splitting bigger calls.

One ``log_batch`` call is one write request, limited as MLflow's LogBatch is (1000 metric points,
100 params, 100 tags, 1000 in all); keys follow the name rule (1-128 characters) and values have
at most 6000 characters. A refused call names the limit and leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from tests.contract.conftest import Backend
from tests.contract.helpers import snapshot
from tracking import Conflict, ExperimentLogger, InvalidInput
from tracking.entities import Metric, RunRecord
from tracking.stores.ports.metadata import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
    split_batch,
)
from tracking.validation import MAX_PARAM_VALUE, MAX_TAG_VALUE


def _run(backend: Backend) -> RunRecord:
    """A run that already holds a param, a tag and a metric, so a snapshot has content."""
    store = backend.metadata
    run = store.create_run(
        experiment=store.get_or_create_experiment("limits"),
        run_id="a" * 32,
        run_name="r",
        tags={"team": "ds"},
        parent_run_id=None,
        start_time=1,
    )
    store.log_batch(
        run.run_id,
        params={"seed": "1"},
        metrics=[Metric(key="loss", value=0.5, step=0, timestamp=1)],
    )
    return run


def _points(count: int, key: str = "m") -> list[Metric]:
    return [Metric(key=key, value=i / 3, step=i, timestamp=i) for i in range(count)]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            {"metrics": _points(MAX_METRICS_PER_BATCH + 1)},
            "1001 metric points in one request; the limit is 1000",
        ),
        (
            {"params": {f"p{i}": "v" for i in range(MAX_PARAMS_PER_BATCH + 1)}},
            "101 params in one request; the limit is 100",
        ),
        (
            {"tags": {f"t{i}": "v" for i in range(MAX_TAGS_PER_BATCH + 1)}},
            "101 tags in one request; the limit is 100",
        ),
        (
            {"metrics": _points(MAX_METRICS_PER_BATCH), "params": {"extra": "1"}},
            "1001 metric points, params and tags in all in one request; the limit is 1000",
        ),
    ],
    ids=["metrics", "params", "tags", "entities"],
)
def test_too_many_in_one_request_is_refused(
    backend: Backend, batch: dict[str, Any], message: str
) -> None:
    run = _run(backend)
    before = snapshot(backend)
    with pytest.raises(InvalidInput, match=message):
        backend.metadata.log_batch(run.run_id, **batch)
    assert snapshot(backend) == before


def test_a_batch_at_every_limit_is_accepted(backend: Backend) -> None:
    run = _run(backend)
    params = {f"p{i:03d}": str(i) for i in range(MAX_PARAMS_PER_BATCH)}
    tags = {f"t{i:03d}": str(i) for i in range(MAX_TAGS_PER_BATCH)}
    metrics = _points(MAX_ENTITIES_PER_BATCH - len(params) - len(tags))
    backend.metadata.log_batch(run.run_id, metrics=metrics, params=params, tags=tags)
    backend.metadata.log_batch(run.run_id, metrics=_points(MAX_METRICS_PER_BATCH, key="n"))
    stored = backend.metadata.get_run(run.run_id)
    assert stored.params == {"seed": "1", **params}
    assert stored.tags == {"team": "ds", **tags}
    assert [p.step for p in backend.metadata.iter_metric_history(run.run_id, "m")] == list(
        range(len(metrics))
    )
    assert len(list(backend.metadata.iter_metric_history(run.run_id, "n"))) == 1000


def test_a_conflict_in_a_full_batch_writes_nothing(backend: Backend) -> None:
    """100 params and 100 tags take several DynamoDB transactions: still all or nothing."""
    run = _run(backend)
    backend.metadata.log_batch(run.run_id, params={"p050": "old", "p099": "same"})
    params = {f"p{i:03d}": "new" for i in range(MAX_PARAMS_PER_BATCH)} | {"p099": "same"}
    tags = {f"t{i:03d}": "x" for i in range(MAX_TAGS_PER_BATCH)}
    before = snapshot(backend)
    with pytest.raises(Conflict, match="p050"):
        backend.metadata.log_batch(run.run_id, params=params, tags=tags, metrics=_points(10))
    assert snapshot(backend) == before
    # Without the conflicting key the same batch goes through, and again is a no-op.
    del params["p050"]
    backend.metadata.log_batch(run.run_id, params=params, tags=tags)
    backend.metadata.log_batch(run.run_id, params=params, tags=tags)
    stored = backend.metadata.get_run(run.run_id)
    assert stored.params == {"seed": "1", "p050": "old", **params}
    assert stored.tags == {"team": "ds", **tags}


LONG_KEY = "k" * 129
OK_KEY = "k" * 128


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({"params": {LONG_KEY: "v"}}, "invalid param key .*1-128 characters"),
        ({"tags": {LONG_KEY: "v"}}, "invalid tag key .*1-128 characters"),
        (
            {"metrics": [Metric(key=LONG_KEY, value=1.0, step=0, timestamp=0)]},
            "invalid metric key .*1-128 characters",
        ),
        (
            {"params": {"p": "x" * (MAX_PARAM_VALUE + 1)}},
            "param 'p' value has 6001 characters; the limit is 6000",
        ),
        (
            {"tags": {"t": "x" * (MAX_TAG_VALUE + 1)}},
            "tag 't' value has 6001 characters; the limit is 6000",
        ),
    ],
    ids=["param-key", "tag-key", "metric-key", "param-value", "tag-value"],
)
def test_over_long_keys_and_values_are_refused(
    backend: Backend, batch: dict[str, Any], message: str
) -> None:
    run = _run(backend)
    # One bad entry among good ones: the whole call is refused.
    batch = {
        "metrics": [*batch.get("metrics", ()), *_points(5, key="good")],
        "params": {"good": "1", **batch.get("params", {})},
        "tags": {"good": "1", **batch.get("tags", {})},
    }
    before = snapshot(backend)
    with pytest.raises(InvalidInput, match=message):
        backend.metadata.log_batch(run.run_id, **batch)
    assert snapshot(backend) == before


def test_keys_and_values_at_the_limit_are_accepted(backend: Backend) -> None:
    run = _run(backend)
    backend.metadata.log_batch(
        run.run_id,
        params={OK_KEY: "p" * MAX_PARAM_VALUE},
        tags={OK_KEY: "t" * MAX_TAG_VALUE},
        metrics=[Metric(key=OK_KEY, value=1.0, step=0, timestamp=0)],
    )
    stored = backend.metadata.get_run(run.run_id)
    assert stored.params[OK_KEY] == "p" * MAX_PARAM_VALUE
    assert stored.tags[OK_KEY] == "t" * MAX_TAG_VALUE
    assert stored.metrics[OK_KEY].value == 1.0


# -- the SDK splits what the store would refuse ---------------------------------------------------


Calls = list[tuple[int, int, int]]


@pytest.fixture
def requests(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The size (metric points, params, tags) of every ``log_batch`` request the SDK sends."""
    calls: Calls = []
    original: Callable[..., None] = backend.metadata.log_batch

    def recording(
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        calls.append((len(metrics), len(params or {}), len(tags or {})))
        original(run_id, metrics=metrics, params=params, tags=tags)

    monkeypatch.setattr(backend.metadata, "log_batch", recording)
    return calls


@pytest.fixture
def sdk(backend: Backend) -> ExperimentLogger:
    return ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)


def _within_limits(calls: Calls) -> bool:
    return all(
        m <= MAX_METRICS_PER_BATCH
        and p <= MAX_PARAMS_PER_BATCH
        and t <= MAX_TAGS_PER_BATCH
        and m + p + t <= MAX_ENTITIES_PER_BATCH
        for m, p, t in calls
    )


def test_sdk_splits_big_calls_and_stores_everything(
    sdk: ExperimentLogger, requests: Calls, backend: Backend
) -> None:
    params = {f"p{i:04d}": i for i in range(250)}
    tags = {f"t{i:04d}": f"v{i}" for i in range(230)}
    with sdk.start_run("limits", run_name="big") as run:
        run.log_params(params)
        run.log_params(params)  # the same values again: a no-op, nothing re-sent
        run.set_tags(tags)
        run.log_metrics({f"m{i:04d}": i / 7 for i in range(120)}, step=0)
        for step in range(2100):
            run.log_metric("loss", 1 / (step + 1), step=step)
    assert requests
    assert _within_limits(requests), requests
    assert [p for _, p, _ in requests if p] == [100, 100, 50]
    assert [t for _, _, t in requests if t] == [100, 100, 30]
    stored = sdk.get_run(run.run_id)
    assert stored.params == {key: str(value) for key, value in params.items()}
    assert stored.tags == tags
    assert len(stored.metrics) == 121
    history = sdk.get_metric_history(run.run_id, "loss")
    assert [p.step for p in history] == list(range(2100))
    assert backend.metadata.get_run(run.run_id) == stored


def test_log_experiment_and_start_run_take_many_params_and_tags(
    sdk: ExperimentLogger, requests: Calls
) -> None:
    params = {f"p{i:04d}": "x" * 250 for i in range(333)}
    tags = {f"t{i:04d}": "y" for i in range(150)}
    stored = sdk.log_experiment("limits", params=params, tags=tags, metrics={"auc": 0.9})
    assert _within_limits(requests), requests
    assert stored.params == params
    assert stored.tags == tags
    assert stored.latest_metrics == {"auc": 0.9}


def test_sdk_conflict_in_a_big_call_writes_nothing(
    sdk: ExperimentLogger, requests: Calls, backend: Backend
) -> None:
    run = sdk.start_run("limits")
    run.log_params({"p0150": "old"})
    before = snapshot(backend)
    sent = len(requests)
    with pytest.raises(Conflict, match="p0150"):
        run.log_params({f"p{i:04d}": "new" for i in range(300)})
    assert len(requests) == sent
    assert snapshot(backend) == before


def test_sdk_refuses_a_big_call_with_one_bad_key_before_writing(
    sdk: ExperimentLogger, requests: Calls, backend: Backend
) -> None:
    run = sdk.start_run("limits")
    before = snapshot(backend)
    sent = len(requests)
    bad_params = {**{f"p{i:04d}": "v" for i in range(300)}, LONG_KEY: "v"}
    with pytest.raises(InvalidInput, match="1-128 characters"):
        run.log_params(bad_params)
    bad_tags = {**{f"t{i:04d}": "v" for i in range(300)}, "t": "x" * (MAX_TAG_VALUE + 1)}
    with pytest.raises(InvalidInput, match="the limit is 6000"):
        run.set_tags(bad_tags)
    assert len(requests) == sent
    assert snapshot(backend) == before


def test_split_batch_keeps_order_and_fits_the_limits() -> None:
    metrics = _points(2500)
    params = {f"p{i}": "v" for i in range(250)}
    tags = {f"t{i}": "v" for i in range(120)}
    chunks = list(split_batch(metrics, params, tags))
    assert _within_limits([(len(m), len(p), len(t)) for m, p, t in chunks])
    assert [point for m, _, _ in chunks for point in m] == metrics
    assert [key for _, p, _ in chunks for key in p] == list(params)
    assert [key for _, _, t in chunks for key in t] == list(tags)
    assert list(split_batch()) == []
