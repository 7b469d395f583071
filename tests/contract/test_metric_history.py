"""Metric history for charts on every backend: downsampling, bulk reads, idempotent and
concurrent chunk writes, and (DynamoDB) the upgrade of a store written by the previous release."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.conftest import RACE_BACKENDS, Backend
from tests.contract.helpers import snapshot
from tests.legacy_release import OldReleaseStore, legacy_items
from tracking import ExperimentLogger
from tracking.downsample import downsample
from tracking.entities import Metric, RunRecord
from tracking.errors import InvalidInput, NotFound, StoreUnavailable

AWS = pytest.mark.parametrize("backend", ["moto", "moto_server"], indirect=True)


def _logger(backend: Backend) -> ExperimentLogger:
    return ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)


def _run(store: Any, run_id: str) -> RunRecord:
    return store.create_run(  # type: ignore[no-any-return]
        experiment=store.get_or_create_experiment("charts"), run_id=run_id, run_name=None,
        tags={}, parent_run_id=None, start_time=1000,
    )  # fmt: skip


def _points(key: str, steps: range | list[int], shift: float = 0.0) -> list[Metric]:
    return [
        Metric(key=key, value=1.0 / (s + 1) + shift, step=s, timestamp=10_000 + s) for s in steps
    ]


def _log(store: Any, run_id: str, points: list[Metric]) -> None:
    for start in range(0, len(points), 500):
        store.log_batch(run_id, metrics=points[start : start + 500])


def test_downsampled_history_keeps_first_last_and_spikes(backend: Backend) -> None:
    _run(backend.metadata, "r1")
    points = _points("loss", range(3000))
    points[1717] = Metric(key="loss", value=99.0, step=1717, timestamp=1)
    points[2222] = Metric(key="loss", value=-99.0, step=2222, timestamp=1)
    _log(backend.metadata, "r1", points)
    logger = _logger(backend)
    assert logger.get_metric_history("r1", "loss") == points
    shown = logger.get_metric_history("r1", "loss", max_points=100)
    assert shown == downsample(points, 100)
    assert len(shown) <= 100
    assert {0, 1717, 2222, 2999} <= {p.step for p in shown}
    assert logger.get_metric_history("r1", "loss", max_points=5000) == points


def test_pages_cross_chunks_with_sparse_steps(backend: Backend) -> None:
    _run(backend.metadata, "r1")
    points = _points("m", [s * 7 for s in range(400)])  # steps 0..2793, sparse
    _log(backend.metadata, "r1", points)
    seen: list[Metric] = []
    token = None
    while True:
        page = backend.metadata.get_metric_history("r1", "m", 37, token)
        seen += page.items
        token = page.next_token
        if token is None:
            break
    assert seen == points


def test_resent_batches_never_duplicate(backend: Backend) -> None:
    _run(backend.metadata, "r1")
    first = _points("loss", range(250))
    _log(backend.metadata, "r1", first)
    _log(backend.metadata, "r1", first)  # a retried flush
    changed = _points("loss", range(100, 150), shift=1.0)
    backend.metadata.log_batch("r1", metrics=changed)
    history = list(backend.metadata.iter_metric_history("r1", "loss"))
    assert [p.step for p in history] == list(range(250))
    assert history[100:150] == changed


@RACE_BACKENDS
def test_concurrent_writers_of_one_chunk_lose_nothing(backend: Backend) -> None:
    _run(backend.metadata, "r1")
    threads_count = 4
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            barrier.wait()
            # Interleaved steps: every write of every thread lands in the same chunks.
            steps = list(range(offset, 400, threads_count))
            for start in range(0, len(steps), 10):
                backend.metadata.log_batch("r1", metrics=_points("m", steps[start : start + 10]))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert list(backend.metadata.iter_metric_history("r1", "m")) == _points("m", range(400))


def test_bulk_read_of_several_runs(backend: Backend) -> None:
    for run_id, keys in (("a", ["auc", "loss"]), ("b", ["loss"]), ("c", [])):
        _run(backend.metadata, run_id)
        for key in keys:
            _log(backend.metadata, run_id, _points(key, range(150), shift=len(run_id)))
    logger = _logger(backend)
    got = logger.get_metric_histories(["a", "b", "a"], ["loss", "auc"])
    assert set(got) == {"a", "b"}
    assert got["a"]["loss"] == _points("loss", range(150), shift=1)
    assert got["b"]["auc"] == []
    by_default = logger.get_metric_histories(["a", "b", "c"], max_points=10)
    assert set(by_default["c"]) == {"auc", "loss"}
    assert by_default["a"]["auc"] == downsample(_points("auc", range(150), shift=1), 10)
    assert by_default["c"]["loss"] == []
    with pytest.raises(NotFound, match="nope"):
        logger.get_metric_histories(["a", "nope"], ["loss"])


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda lg: lg.get_metric_history("r1", "m", max_points=1), "max_points"),
        (lambda lg: lg.get_metric_history("r1", "m", max_points=True), "max_points"),
        (lambda lg: lg.get_metric_histories(["r1"], ["m"], max_points=0), "max_points"),
        (lambda lg: lg.get_metric_histories([f"r{i}" for i in range(11)], ["m"]), "run_ids"),
        (lambda lg: lg.get_metric_histories([], ["m"]), "run_ids"),
        (lambda lg: lg.get_metric_histories(["r1"], [f"k{i}" for i in range(101)]), "keys"),
        (lambda lg: lg.get_metric_histories(["r1"], ["../x"]), "metric key"),
    ],
)
def test_bad_history_requests_are_invalid_input(backend: Backend, call: Any, field: str) -> None:
    _run(backend.metadata, "r1")
    _log(backend.metadata, "r1", _points("m", range(10)))
    before = snapshot(backend)
    with pytest.raises(InvalidInput, match=field):
        call(_logger(backend))
    assert snapshot(backend) == before


#: Examples per backend: each writes one run's history (moto over HTTP is the slowest).
DOWNSAMPLE_EXAMPLES = {"sqlite": 60, "moto": 30, "moto_server": 12}
_example_runs = itertools.count()
#: Few distinct values, so buckets have ties (the earliest step must win), and any finite one.
_values = st.one_of(
    st.sampled_from([-1.0, 0.0, -0.0, 0.5, 2.0]),
    st.floats(allow_nan=False, allow_infinity=False),  # the SDK refuses NaN and infinities
)


@st.composite
def _history(draw: st.DrawFn) -> list[list[Metric]]:
    """Batches of one key, in the order they are logged: sparse steps across chunks, some
    steps logged again later with another value (the later write replaces the point)."""
    steps = draw(st.lists(st.integers(0, 700), min_size=0, max_size=400, unique=True))
    first = [
        Metric(key="m", value=draw(_values), step=step, timestamp=draw(st.integers(0, 5)))
        for step in steps
    ]
    again = draw(st.lists(st.sampled_from(steps), unique=True)) if steps else []
    relogged = [
        Metric(key="m", value=draw(_values), step=step, timestamp=draw(st.integers(0, 5)))
        for step in again
    ]
    return [first[i : i + 500] for i in range(0, len(first), 500)] + ([relogged] if again else [])


def test_store_downsampling_equals_downsample_of_the_full_history(backend: Backend) -> None:
    logger = _logger(backend)

    @given(batches=_history(), max_points=st.integers(2, 80))
    @settings(
        max_examples=DOWNSAMPLE_EXAMPLES[backend.name],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def check(batches: list[list[Metric]], max_points: int) -> None:
        run_id = f"p{next(_example_runs)}"
        _run(backend.metadata, run_id)
        for batch in batches:
            backend.metadata.log_batch(run_id, metrics=batch)
        full = logger.get_metric_history(run_id, "m")
        expected = downsample(full, max_points)
        assert backend.metadata.get_downsampled_history(run_id, "m", max_points) == expected
        assert logger.get_metric_history(run_id, "m", max_points=max_points) == expected
        bulk = logger.get_metric_histories([run_id], ["m", "never"], max_points=max_points)
        assert bulk == {run_id: {"m": expected, "never": []}}

    check()


# -- the downsampling rule on chosen shapes: the SQLite store reads big ones from its blocks ----

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _wave(steps: range | list[int], period: int = 97) -> list[Metric]:
    return [
        Metric(key="m", value=float((s * 7919) % period), step=s, timestamp=10_000 + s)
        for s in steps
    ]


def _shuffled(points: list[Metric]) -> list[Metric]:
    return [points[(i * 389) % len(points)] for i in range(len(points))]  # 389: coprime


def _spiky() -> list[Metric]:
    points = _wave(range(1200))
    points[333] = Metric(key="m", value=1e9, step=333, timestamp=1)
    points[901] = Metric(key="m", value=-1e9, step=901, timestamp=1)
    return points


#: name: (batches in the order logged, max_points). With max_points 100 (49 buckets) SQLite
#: reads raw rows up to 49 blocks of 16 steps and the blocks beyond.
SHAPES: dict[str, tuple[list[list[Metric]], int]] = {
    "contiguous, one above the budget": ([_wave(range(101))], 100),
    "contiguous, 49 blocks (raw rows)": ([_wave(range(49 * 16))], 100),
    "contiguous, 50 blocks (the blocks)": ([_wave(range(49 * 16 + 1))], 100),
    "contiguous, 1,200 points": ([_wave(range(1200))], 100),
    "sparse: every 1000th step": ([_wave(range(0, 400_000, 1000))], 60),
    "irregular: dense then sparse": (
        [_wave(list(range(600)) + list(range(1000, 300_001, 1000)))],
        100,
    ),
    "steps not starting at 0": ([_wave(range(5_003, 6_100))], 100),
    "out of order across batches": ([_shuffled(_wave(range(1100)))], 100),
    "constant values (ties everywhere)": (
        [[Metric(key="m", value=0.5, step=s, timestamp=s) for s in range(1000)]],
        50,
    ),
    "spikes": ([_spiky()], 100),
    "max_points 2": ([_wave(range(500))], 2),
    "max_points 3": ([_wave(range(500))], 3),
    "max_points 4 (one bucket)": ([_wave(range(500))], 4),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_downsampled_shapes_equal_downsample_of_the_full_history(
    backend: Backend, shape: str
) -> None:
    batches, max_points = SHAPES[shape]
    _run(backend.metadata, "r1")
    for points in batches:
        _log(backend.metadata, "r1", points)
    logger = _logger(backend)
    full = logger.get_metric_history("r1", "m")
    assert [p.step for p in full] == sorted({p.step for b in batches for p in b})
    expected = downsample(full, max_points)
    assert len(expected) <= max_points
    assert logger.get_metric_history("r1", "m", max_points=max_points) == expected
    bulk = logger.get_metric_histories(["r1"], ["m"], max_points=max_points)
    assert bulk == {"r1": {"m": expected}}


def test_a_relogged_extreme_is_replaced_in_the_downsampled_history(backend: Backend) -> None:
    """Steps 500 and 600 were their blocks' minimum and maximum; logged again with ordinary
    values, neither may survive as the old extreme (SQLite recomputes the block)."""
    _run(backend.metadata, "r1")
    points = [Metric(key="m", value=1.0, step=s, timestamp=s) for s in range(1000)]
    points[500] = Metric(key="m", value=-5.0, step=500, timestamp=1)
    points[600] = Metric(key="m", value=7.0, step=600, timestamp=1)
    _log(backend.metadata, "r1", points)
    logger = _logger(backend)
    assert {-5.0, 7.0} <= {p.value for p in logger.get_metric_history("r1", "m", max_points=20)}
    backend.metadata.log_batch(
        "r1",
        metrics=[
            Metric(key="m", value=3.0, step=500, timestamp=2),
            Metric(key="m", value=0.5, step=600, timestamp=2),
        ],
    )
    full = logger.get_metric_history("r1", "m")
    shown = logger.get_metric_history("r1", "m", max_points=20)
    assert shown == downsample(full, 20)
    assert not {-5.0, 7.0} & {p.value for p in shown}
    assert {3.0, 0.5} <= {p.value for p in shown}


@SQLITE
def test_a_big_sqlite_history_is_read_from_its_blocks(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 points at max_points 1,000: the blocks answer, no raw row is read."""
    from tracking.stores.sqlite import blocks

    _run(backend.metadata, "r1")
    points = _wave(range(100_000), period=100_003)
    for start in range(0, len(points), 1000):
        backend.metadata.log_batch("r1", metrics=points[start : start + 1000])
    expected = downsample(points, 1000)
    assert {0, 99_999} <= {p.step for p in expected}

    def no_raw_read(*_args: object) -> None:
        raise AssertionError("the raw points were read")

    monkeypatch.setattr(blocks, "history_rows", no_raw_read)
    assert backend.metadata.get_downsampled_history("r1", "m", 1000) == expected
    bulk = backend.metadata.get_metric_histories(["r1"], ["m"], max_points=1000)
    assert bulk == {"r1": {"m": expected}}
    assert backend.metadata.get_downsampled_history("r1", "m", 2) == [points[0], points[-1]]


# -- upgrade of a store written by the previous release (DynamoDB) -----------------------------


def _old_store(backend: Backend) -> OldReleaseStore:
    return OldReleaseStore(backend.metadata.table_prefix)  # type: ignore[attr-defined]


def _histories(backend: Backend, expected: dict[tuple[str, str], list[Metric]]) -> None:
    for (run_id, key), points in expected.items():
        assert list(backend.metadata.iter_metric_history(run_id, key)) == points, (run_id, key)
        page = backend.metadata.get_metric_history(run_id, key, 1000)
        assert page.items == points[:1000]


@AWS
def test_upgrade_of_old_release_store_is_resumable_and_loses_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracking.stores.dynamodb import history_upgrade as upgrade_module

    old = _old_store(backend)
    expected: dict[tuple[str, str], list[Metric]] = {}
    for run_id in ("o1", "o2", "o3"):
        _run(old, run_id)
        for key in ("loss", "auc"):
            points = _points(key, range(0, 700, 3), shift=len(key))
            _log(old, run_id, points)
            expected[(run_id, key)] = points
    _run(old, "empty")
    # This release keeps writing to an old run before the upgrade: both layouts at once.
    newer = _points("loss", range(600, 800), shift=5.0)
    _log(backend.metadata, "o1", newer)
    merged = {p.step: p for p in expected[("o1", "loss")]}
    merged.update((p.step, p) for p in newer)
    expected[("o1", "loss")] = [merged[s] for s in sorted(merged)]
    _histories(backend, expected)
    legacy_before = len(legacy_items(old))
    assert legacy_before == 6 * len(range(0, 700, 3))

    store: Any = backend.metadata
    monkeypatch.setattr(store, "_sleep", lambda _s: None)
    original = store._batch_write
    calls = {"n": 0}

    def crash_on_third(requests: list[dict[str, Any]], action: str = "") -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise StoreUnavailable("injected: the upgrade died half way")
        original(requests, action)

    monkeypatch.setattr(store, "_batch_write", crash_on_third)
    with pytest.raises(StoreUnavailable, match="injected"):
        upgrade_module.upgrade_metric_history(store, page_items=100)
    left = len(legacy_items(old))
    assert 0 < left < legacy_before  # half way: some converted and deleted, some not
    _histories(backend, expected)  # nothing lost or doubled while half-converted

    monkeypatch.setattr(store, "_batch_write", original)
    report = upgrade_module.upgrade_metric_history(store, page_items=100)
    assert report.legacy_items_deleted == left
    assert report.runs_marked == 4
    assert legacy_items(old) == []
    _histories(backend, expected)
    for run_id in ("o1", "o2", "o3", "empty"):
        assert store._history_format(run_id) is not None
    again = store.upgrade_metric_history()  # idempotent
    assert (again.points_converted, again.legacy_items_deleted, again.runs_marked) == (0, 0, 0)
    _histories(backend, expected)
