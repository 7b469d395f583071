"""put_object, list_objects and get_object (the prediction log's storage) on every backend."""

from __future__ import annotations

import pytest

from tests.contract.conftest import Backend
from tracking.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound


def test_put_list_get_round_trip(backend: Backend) -> None:
    store = backend.artifacts
    keys = [
        "predictions/churn/2026-12-02/19/a.jsonl.gz",
        "predictions/churn/2026-12-02/19/b.jsonl.gz",
        "predictions/churn/2026-12-02/20/c.jsonl.gz",
        "predictions/churn/2026-12-020/01/not-this-day.jsonl.gz",
        "feedback/churn/2026-12-02/19/d.jsonl.gz",
    ]
    for index, key in enumerate(keys):
        store.put_object(key, f"payload {index}".encode())
    assert store.list_objects("predictions/churn/2026-12-02/19") == keys[:2]
    # A folder prefix is whole segments: the 2026-12-020 folder is not part of 2026-12-02.
    assert store.list_objects("predictions/churn/2026-12-02") == keys[:3]
    assert store.list_objects("predictions/churn") == sorted(keys[:4])
    assert store.list_objects("predictions/rag") == []
    assert store.get_object(keys[2]) == b"payload 2"


def test_put_refuses_to_overwrite(backend: Backend) -> None:
    store = backend.artifacts
    key = "feedback/churn/2026-12-02/19/x.jsonl.gz"
    store.put_object(key, b"first")
    with pytest.raises(AlreadyExists):
        store.put_object(key, b"second")
    assert store.get_object(key) == b"first"


@pytest.mark.parametrize(
    "key",
    [
        "runs/r1/model/model.ubj",  # run artifacts only come from upload
        "predictions/../runs/x",
        "predictions/churn/../../etc",
        "predictions//x",
        "/predictions/x",
        "predictions/a\\b/c",
        "predictions/x\n",
        "elsewhere/x",
        "predictions",  # a folder, not an object
        "",
    ],
)
def test_bad_keys_are_refused_and_nothing_is_written(backend: Backend, key: str) -> None:
    with pytest.raises(InvalidInput):
        backend.artifacts.put_object(key, b"x")
    assert backend.artifacts.list_objects("predictions") == []


def test_bad_prefixes_are_refused(backend: Backend) -> None:
    for prefix in ("predictions/..", "runs", "predictions/churn/", "../x"):
        with pytest.raises(InvalidInput):
            backend.artifacts.list_objects(prefix)


def test_get_missing_and_oversized(backend: Backend) -> None:
    store = backend.artifacts
    with pytest.raises(NotFound):
        store.get_object("predictions/churn/2026-12-02/19/missing.jsonl.gz")
    store.put_object("predictions/churn/big", b"x" * 100)
    with pytest.raises(IntegrityError):
        store.get_object("predictions/churn/big", max_bytes=99)
    assert store.get_object("predictions/churn/big", max_bytes=100) == b"x" * 100


def test_the_prediction_log_and_outcomes_read_back_on_every_backend(backend: Backend) -> None:
    from datetime import UTC, datetime, timedelta

    from tracking.monitoring.feedback import Outcome, join_labels, read_outcomes, write_outcomes
    from tracking.monitoring.prediction_log import (
        encode,
        hour_folder,
        object_name,
        read_predictions,
    )

    store = backend.artifacts
    now = datetime(2026, 12, 2, 19, 30, tzinfo=UTC)
    for hours_ago in (0, 1, 30):  # 30 h ago is outside a 24 h window
        at = now - timedelta(hours=hours_ago)
        records = [{"request_id": f"r{hours_ago}", "row": 0, "time": int(at.timestamp() * 1000),
                    "model": "churn", "score": 0.5, "sticky": f"p{hours_ago}"}]  # fmt: skip
        store.put_object(f"{hour_folder('predictions', 'churn', at)}/{object_name(at)}",
                         encode(records))  # fmt: skip
    found = list(read_predictions(store, "churn", now - timedelta(hours=24), now))
    assert sorted(r["request_id"] for r in found) == ["r0", "r1"]
    write_outcomes(store, "churn", [Outcome(request_id="r0", label=1),
                                    Outcome(key="p1", label=0)], now)  # fmt: skip
    outcomes = read_outcomes(store, "churn", now - timedelta(hours=1), now)
    by_id = {r["request_id"]: label for r, label in zip(found, join_labels(found, outcomes),
                                                         strict=True)}  # fmt: skip
    assert by_id == {"r0": 1.0, "r1": 0.0}
