"""The recorder: bounded when the store fails or stalls, sampled, readable back, flush bounded."""

from __future__ import annotations

import gzip
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from functions.api.prediction_log import PredictionLog, prediction_records
from models.churn.features import ChurnFeatures
from tracking.artifacts.local import LocalArtifactStore
from tracking.errors import StoreUnavailable
from tracking.monitoring.prediction_log import read_predictions

NOW = datetime(2026, 12, 2, 19, 30, tzinfo=UTC)


class FailingStore(LocalArtifactStore):
    """A real local store whose data writes fail (a fault double, like tests/contract/faults.py)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.attempts = 0

    def put_object(self, key: str, data: bytes) -> str:
        self.attempts += 1
        raise StoreUnavailable("injected: the store is down")


class StallingStore(LocalArtifactStore):
    """A real local store whose data writes block until released."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()

    def put_object(self, key: str, data: bytes) -> str:
        self.release.wait(10)
        return super().put_object(key, data)


def _records(count: int, model: str = "churn", **extra: Any) -> list[dict[str, Any]]:
    return [
        {"request_id": f"r{i}", "row": 0, "model": model, "variant": "production",
         "version": "v1", "score": i / max(count, 1), "risk_level": "low", **extra}
        for i in range(count)
    ]  # fmt: skip


def _dropped(model: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "prediction_log_dropped_total", {"model": model, "reason": reason}
    )
    return value or 0.0


def _clock() -> float:
    return NOW.timestamp()


def test_records_are_written_as_gz_jsonl_and_read_back(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    recorder = PredictionLog(store, clock=_clock, flush_seconds=60)
    assert recorder.record(_records(5, features={"sessions_7d": 3})) == 5
    assert recorder.flush(5.0)
    keys = store.list_objects("predictions/churn/2026-12-02/19")
    assert len(keys) == 1
    assert keys[0].endswith(".jsonl.gz")
    back = list(read_predictions(store, "churn", NOW - timedelta(hours=1), NOW))
    assert [r["request_id"] for r in back] == [f"r{i}" for i in range(5)]
    assert back[0]["time"] == int(NOW.timestamp() * 1000)
    assert "features" not in back[0]  # PREDICTION_LOG_FEATURES is off
    recorder.close()


def test_features_are_kept_only_when_enabled(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    recorder = PredictionLog(store, clock=_clock, include_features=True)
    row = ChurnFeatures(player_id="p_1", sessions_7d=3, playtime_7d=40.0, iap_count=0)
    answer = {"player_id": "p_1", "churn_probability": 0.7, "risk_level": "high",
              "model_version": "v2"}  # fmt: skip
    assert recorder.log_predictions(
        request_id="req-1", model="churn", variant="challenger", answers=[answer], rows=[row],
        sticky_field="player_id",
    ) == 1  # fmt: skip
    assert recorder.flush(5.0)
    (back,) = read_predictions(store, "churn", NOW - timedelta(hours=1), NOW)
    assert back["variant"] == "challenger"
    assert back["version"] == "v2"
    assert back["score"] == 0.7
    assert back["risk_level"] == "high"
    assert back["sticky"] == "p_1"
    assert back["features"]["sessions_7d"] == 3
    recorder.close()


def test_a_model_without_a_score_logs_its_output() -> None:
    (record,) = prediction_records(
        request_id="r", model="rag", variant="production", rows=[{"query": "q", "k": 1}],
        answers=[{"passages": [{"id": "a"}], "model_version": "v1"}],
    )  # fmt: skip
    assert record["score"] is None
    assert record["output"] == {"passages": [{"id": "a"}]}
    assert "features" not in record


def test_a_failing_store_drops_after_bounded_retries_and_counts(tmp_path: Path) -> None:
    store = FailingStore(tmp_path)
    before = _dropped("failing", "store_error")
    recorder = PredictionLog(store, clock=_clock, retries=3, retry_backoff=0.001)
    assert recorder.record(_records(7, model="failing")) == 7  # the caller never sees a failure
    assert recorder.flush(5.0)
    assert store.attempts == 3
    assert recorder.dropped["store_error"] == 7
    assert _dropped("failing", "store_error") - before == 7
    assert store.list_objects("predictions") == []
    recorder.close()


def test_a_stalled_store_fills_the_buffer_then_drops_without_blocking(tmp_path: Path) -> None:
    store = StallingStore(tmp_path)
    before = _dropped("stalled", "buffer_full")
    recorder = PredictionLog(store, clock=_clock, buffer_size=100, batch_size=10)
    recorder.record(_records(10, model="stalled"))  # the writer takes these and stalls
    deadline = time.monotonic() + 5
    while recorder._buffer and time.monotonic() < deadline:
        time.sleep(0.01)
    accepted = sum(recorder.record(_records(1, model="stalled")) for _ in range(250))
    assert accepted == 100  # the bound, not more
    assert recorder.dropped["buffer_full"] == 150
    assert _dropped("stalled", "buffer_full") - before == 150
    # flush is bounded by its timeout even though the store does not answer.
    started = time.monotonic()
    assert recorder.flush(0.2) is False
    assert time.monotonic() - started < 2.0
    store.release.set()
    assert recorder.flush(5.0)
    back = list(read_predictions(store, "stalled", NOW - timedelta(hours=1), NOW))
    assert len(back) == 110
    recorder.close()


def test_sample_rate_is_respected() -> None:
    class Null(LocalArtifactStore):
        def put_object(self, key: str, data: bytes) -> str:
            return key

    recorder = PredictionLog(
        Null(Path("/nonexistent")), sample_rate=0.1, rng=random.Random(3), buffer_size=10**6,
        batch_size=10**6, flush_seconds=60,
    )  # fmt: skip
    accepted = sum(recorder.record(_records(100)) for _ in range(200))
    # 20,000 draws at 10 %: the standard deviation is 42; 5 sigma either side.
    assert 2000 - 212 < accepted < 2000 + 212
    assert PredictionLog(Null(Path("/x")), sample_rate=0.0).record(_records(50)) == 0
    recorder.close()


def test_disabled_log_takes_nothing_and_starts_no_thread(tmp_path: Path) -> None:
    recorder = PredictionLog(LocalArtifactStore(tmp_path), enabled=False)
    assert recorder.record(_records(3)) == 0
    assert recorder._thread is None
    assert recorder.flush(0.1)


def test_close_counts_what_could_not_be_written(tmp_path: Path) -> None:
    store = StallingStore(tmp_path)
    recorder = PredictionLog(store, clock=_clock, batch_size=5)
    recorder.record(_records(5, model="closing"))
    time.sleep(0.05)
    recorder.record(_records(3, model="closing"))
    recorder.close(timeout=0.1)
    assert recorder.dropped["shutdown"] >= 3
    store.release.set()


def test_a_record_that_cannot_be_stored_never_raises(tmp_path: Path) -> None:
    recorder = PredictionLog(LocalArtifactStore(tmp_path), clock=_clock)
    assert recorder.record([{"model": "../escape", "score": 1.0}]) == 1
    assert recorder.flush(5.0)
    assert recorder.dropped["store_error"] == 1
    assert not list(tmp_path.rglob("*.gz"))
    recorder.close()


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_log_predictions_samples_before_building(rate: float) -> None:
    class Null(LocalArtifactStore):
        def put_object(self, key: str, data: bytes) -> str:
            return key

    recorder = PredictionLog(Null(Path("/x")), sample_rate=rate, rng=random.Random(9),
                             buffer_size=10**6, batch_size=10**6, flush_seconds=60)  # fmt: skip
    answers = [{"churn_probability": 0.5, "risk_level": "low", "model_version": "v1"}] * 4000
    rows = [{"player_id": "p"}] * 4000
    taken = recorder.log_predictions(request_id="r", model="churn", variant="production",
                                     answers=answers, rows=rows)  # fmt: skip
    assert abs(taken - 4000 * rate) < 5 * (4000 * rate * (1 - rate)) ** 0.5
    recorder.close()


def test_drops_are_published_as_emf_when_on_lambda(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    recorder = PredictionLog(FailingStore(tmp_path), clock=_clock, retries=1, publish_emf=True)
    recorder.record(_records(4, model="emf"))
    assert recorder.flush(5.0)
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                 if "PredictionLogDropped" in line]  # fmt: skip
    (document,) = documents
    assert document["PredictionLogDropped"] == [4.0]
    assert document["model"] == "emf"
    assert document["reason"] == "store_error"
    recorder.close()


def test_flush_waits_for_a_batch_the_writer_already_took(tmp_path: Path) -> None:
    store = StallingStore(tmp_path)
    recorder = PredictionLog(store, clock=_clock, batch_size=5)
    recorder.record(_records(5, model="inflight"))  # a full batch: the writer takes it
    deadline = time.monotonic() + 5
    while recorder._buffer and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not recorder._buffer
    # The buffer is empty, but the batch is not stored: flush must not report success.
    assert recorder.flush(0.1) is False
    store.release.set()
    assert recorder.flush(5.0)
    assert len(store.list_objects("predictions/inflight")) == 1
    recorder.close()


def _as_lines(records: list[dict[str, Any]], time_ms: int) -> list[str]:
    import json

    encoder = json.JSONEncoder(separators=(",", ":"), default=str)
    return [encoder.encode({**record, "time": time_ms}) for record in records]


@pytest.mark.parametrize(
    ("answers", "sticky_field", "include_features", "score_key"),
    [
        # churn: a probability and a risk level
        ([{"player_id": "p0", "churn_probability": 0.123456, "risk_level": "low",
           "model_version": "v1"},
          {"player_id": "p1", "churn_probability": 1e-7, "risk_level": "high",
           "model_version": "v2"}], None, False, None),
        # a generic tabular model: no score key, so the output is logged; a list and an int
        ([{"prediction": 0.5, "model_version": "v3"}, {"prediction": [0.1, 0.9],
          "model_version": "v3"}, {"prediction": 2, "model_version": "v3"}],
         "player_id", True, None),
        # odd values: NaN, a bool, a string score, None, unicode and quotes, a named score key
        ([{"score": float("nan"), "model_version": None}, {"score": True, "risk_level": None},
          {"s": "x\"é\n", "model_version": "v\u00e9"}, {"s": 3.5}], "level", True, "s"),
        # an output past MAX_OUTPUT_CHARS is logged as null
        ([{"passages": ["x" * 3000], "model_version": "v1"}], None, False, None),
        # the uniform fast path (one predictor call's answers): one output field per answer
        ([{"prediction": 0.5, "model_version": "v3"}, {"prediction": -1e-9, "model_version": "v3"},
          {"prediction": 7, "model_version": "v4"}], None, False, None),
        # ... several output fields, in each answer's own order
        ([{"label": "a", "p": 0.5}, {"p": 0.25, "label": "b\"é"}], None, False, None),
        # ... and where it must give way: a NaN score, a missing score, an unhashable version
        ([{"score": 0.5, "risk_level": "low"}, {"score": float("nan"), "risk_level": "low"}],
         None, False, None),
        ([{"score": 0.5, "model_version": "v1"}, {"score": None, "model_version": "v1"}],
         None, False, "score"),
        ([{"score": 0.5, "model_version": ["v1"]}], None, False, None),
        ([{"prediction": 1.5}, {"prediction": 2.5, "extra": True}], None, False, None),
        # ... integer scores and outputs, and versions and risk levels that vary by row
        ([{"score": 1, "risk_level": "low", "model_version": "v1"},
          {"score": 0.25, "risk_level": "high", "model_version": "v1"},
          {"score": 3, "risk_level": "low", "model_version": "v2"}], None, False, "score"),
        ([{"prediction": 0, "model_version": "v1"}, {"prediction": -4, "model_version": "v1"}],
         None, False, None),
        # ... a bool output, an int beyond a float, finite floats whose sum overflows
        ([{"prediction": True}, {"prediction": 0.5}], None, False, None),
        ([{"score": 10**400}, {"score": 0.5}], None, False, None),
        ([{"probability": 1e308}, {"probability": 1e308}], None, False, None),
        # ... an output past MAX_OUTPUT_CHARS through its key's length (null), or a long int
        ([{"k" * 2100: 0.5, "model_version": "v1"}], None, False, None),
        ([{"prediction": 10**300, "model_version": "v1"}, {"prediction": -1}], None, False, None),
        # ... a named score key that the answers lack: the usual score keys are looked up
        ([{"probability": 0.5, "model_version": "v1"}], None, False, "missing"),
        # ... numbers on both sides of 1e-4, where repr starts writing an exponent (and the
        # batched formatting does not), zeros of both signs, and past 1e16
        ([{"score": v} for v in (1e-4, 9.999999999999999e-05, -9.999999999999999e-05, 1e-05,
                                 -3.5e-300, 5e-324, 0.0, -0.0, 0, 0.00010000000000000002,
                                 1e16, 1.2345678901234567e17, -1e22, 1.7976931348623157e308)]
         + [{"score": 0.1 + i / 7} for i in range(3)], None, False, None),
    ],
)  # fmt: skip
@pytest.mark.parametrize("column_wise_from", [1, None])
def test_prediction_lines_are_the_records_encoded(
    answers: list[dict[str, Any]],
    sticky_field: str | None,
    include_features: bool,
    score_key: str | None,
    column_wise_from: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each case both ways: built column-wise from one row up (``_uniform_lines``, where it
    applies), and with the default threshold (row by row for these few rows)."""
    from functions.api import prediction_log
    from functions.api.prediction_log import prediction_lines

    if column_wise_from is not None:
        monkeypatch.setattr(prediction_log, "UNIFORM_MIN_ROWS", column_wise_from)

    rows: list[Any] = [
        ChurnFeatures(player_id=f"p.{i}", sessions_7d=i, playtime_7d=1.5, iap_count=0, level=i)
        if i % 2 else {"player_id": f"p\"{i}\u00e9", "level": None, "extra": [1, 2]}
        for i in range(len(answers))
    ]  # fmt: skip
    shared = {"request_id": "req-\u2603", "model": "m", "variant": "canary", "answers": answers,
              "rows": rows, "sticky_field": sticky_field, "include_features": include_features,
              "score_key": score_key}  # fmt: skip
    records = prediction_records(**shared)
    assert prediction_lines(**shared, time_ms=1_764_720_000_123) == _as_lines(
        records, 1_764_720_000_123
    )
    some = [len(answers) - 1]
    assert prediction_lines(**shared, time_ms=5, indexes=some) == _as_lines(
        prediction_records(**shared, indexes=some), 5
    )


@pytest.mark.parametrize("scale", [1e-12, 1e-6, 1e-5, 1e-4, 1e-3, 1.0, 1e6, 1e15, 1e17, 1e300])
def test_batched_number_text_is_each_numbers_repr(scale: float) -> None:
    import numpy as np

    from functions.api.prediction_log import prediction_lines

    rng = np.random.default_rng(int(-np.log10(scale)) + 400)
    # float32 scores widened to float (what XGBoost answers), plain doubles, and negatives
    numbers = [*(rng.random(300).astype(np.float32).astype(float) * scale).tolist(),
               *(rng.standard_normal(300) * scale).tolist()]  # fmt: skip
    answers = [
        {"churn_probability": x, "risk_level": "low", "model_version": "v1"} for x in numbers
    ]
    shared = {"request_id": "r", "model": "m", "variant": "production", "answers": answers,
              "rows": [None] * len(answers)}  # fmt: skip
    assert prediction_lines(**shared, time_ms=7) == _as_lines(prediction_records(**shared), 7)


def test_logged_predictions_read_back_as_their_records(tmp_path: Path) -> None:
    recorder = PredictionLog(LocalArtifactStore(tmp_path), clock=_clock, include_features=True)
    answers = [{"player_id": f"p{i}", "churn_probability": i / 10, "risk_level": "low",
                "model_version": "v1"} for i in range(3)]  # fmt: skip
    rows = [ChurnFeatures(player_id=f"p{i}", sessions_7d=i, playtime_7d=2.0, iap_count=1)
            for i in range(3)]  # fmt: skip
    assert (
        recorder.log_predictions(
            request_id="r1",
            model="readback",
            variant="production",
            answers=answers,
            rows=rows,
            sticky_field="player_id",
        )
        == 3
    )
    assert recorder.flush(5.0)
    expected = [{**record, "time": int(_clock() * 1000)} for record in prediction_records(
        request_id="r1", model="readback", variant="production", answers=answers, rows=rows,
        sticky_field="player_id", include_features=True)]  # fmt: skip
    got = list(read_predictions(LocalArtifactStore(tmp_path), "readback", since=NOW - timedelta(
        hours=1), until=NOW + timedelta(hours=1)))  # fmt: skip
    assert got == expected
    recorder.close()


def test_a_record_with_a_time_out_of_range_is_dropped_and_counted(tmp_path: Path) -> None:
    recorder = PredictionLog(LocalArtifactStore(tmp_path), clock=_clock)
    assert recorder.record([{"model": "faraway", "score": 1.0, "time": 10**20},
                            {"model": "faraway", "score": 0.5}]) == 2  # fmt: skip
    assert recorder.flush(5.0)
    assert recorder.dropped["store_error"] == 1
    assert recorder.written == 1
    recorder.close()


def _batch(recorder: PredictionLog, model: str, count: int, request_id: str) -> int:
    answers = [{"score": i / 100, "model_version": "v1"} for i in range(count)]
    return recorder.log_predictions(request_id=request_id, model=model, variant="production",
                                    answers=answers, rows=[{}] * count)  # fmt: skip


def test_a_batch_that_only_partly_fits_keeps_its_first_rows(tmp_path: Path) -> None:
    store = StallingStore(tmp_path)
    before = _dropped("partial", "buffer_full")
    recorder = PredictionLog(store, clock=_clock, buffer_size=50, batch_size=10**6,
                             flush_seconds=3600)  # fmt: skip
    assert _batch(recorder, "partial", 30, "a") == 30
    assert _batch(recorder, "partial", 30, "b") == 20  # the bound: 50 records
    assert _batch(recorder, "partial", 5, "c") == 0
    assert recorder.dropped["buffer_full"] == 15
    assert _dropped("partial", "buffer_full") - before == 15
    store.release.set()
    assert recorder.flush(5.0)
    back = list(read_predictions(store, "partial", NOW - timedelta(hours=1), NOW))
    assert [(r["request_id"], r["row"]) for r in back] == (
        [("a", i) for i in range(30)] + [("b", i) for i in range(20)]
    )
    recorder.close()


def test_an_object_holds_at_most_batch_size_records(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    recorder = PredictionLog(store, clock=_clock, batch_size=10, flush_seconds=3600)
    assert _batch(recorder, "bounded", 25, "big") == 25  # one request, one buffered entry
    assert recorder.flush(5.0)
    objects = store.list_objects("predictions/bounded")
    sizes = sorted(len(gzip.decompress(store.get_object(key)).splitlines()) for key in objects)
    assert sizes == [5, 10, 10]
    recorder.close()


@pytest.mark.parametrize("count", [0, 1, 5000])
def test_the_writers_compressor_writes_what_gzip_reads(count: int) -> None:
    from isal import igzip

    from tracking.monitoring.prediction_log import encode_lines

    lines = [f'{{"row":{i},"score":{i / 7!r},"text":"é\\u2603"}}' for i in range(count)]
    written = encode_lines(lines, compress=igzip.compress)
    assert gzip.decompress(written) == gzip.decompress(encode_lines(lines))
    assert written[:2] == b"\x1f\x8b"  # a gzip member, as the .jsonl.gz name says
