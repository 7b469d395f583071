"""``tracking.downsample``: extremes survive, the budget holds, the order is kept."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracking.downsample import downsample, downsample_rows, metrics_of_rows
from tracking.entities import Metric
from tracking.errors import InvalidInput


def _series(values: list[float], steps: list[int] | None = None) -> list[Metric]:
    steps = steps if steps is not None else list(range(len(values)))
    return [
        Metric(key="m", value=v, step=s, timestamp=s) for v, s in zip(values, steps, strict=True)
    ]


def test_short_history_is_returned_whole() -> None:
    points = _series([3.0, 1.0, 2.0])
    assert downsample(points, 3) == points
    assert downsample(points, 1000) == points


def test_spikes_survive() -> None:
    values = [1.0] * 10_000
    values[1234], values[7777] = 500.0, -500.0
    kept = downsample(_series(values), 100)
    assert {p.step for p in kept} >= {0, 1234, 7777, 9999}
    assert max(p.value for p in kept) == 500.0
    assert min(p.value for p in kept) == -500.0


@pytest.mark.parametrize("max_points", [2, 3, 4, 5, 10, 11, 999, 1000])
def test_budget_first_last_and_order(max_points: int) -> None:
    rng = random.Random(max_points)
    steps = sorted(rng.sample(range(10**6), 5000))
    points = _series([rng.gauss(0, 1) for _ in steps], steps)
    kept = downsample(points, max_points)
    assert len(kept) <= max_points
    assert kept[0] == points[0]
    assert kept[-1] == points[-1]
    assert [p.step for p in kept] == sorted({p.step for p in kept})  # increasing, no repeats
    assert set(kept) <= set(points)


def test_each_bucket_keeps_its_min_and_max() -> None:
    values = [float((i * 37) % 101) for i in range(1002)]
    points = _series(values)
    kept = downsample(points, 10)  # 4 buckets of 250 inner points
    inner = points[1:-1]
    for index in range(4):
        bucket = inner[index * 250 : (index + 1) * 250]
        chosen = [p for p in kept if bucket[0].step <= p.step <= bucket[-1].step]
        assert min(p.value for p in chosen) == min(p.value for p in bucket)
        assert max(p.value for p in chosen) == max(p.value for p in bucket)
    assert len(kept) == 10


def test_flat_history_keeps_one_point_per_bucket() -> None:
    kept = downsample(_series([0.5] * 100), 10)
    assert 2 < len(kept) <= 10


@pytest.mark.parametrize("bad", [1, 0, -5, True, 2.5, "10", None])
def test_bad_max_points_is_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInput, match="max_points"):
        downsample(_series([1.0, 2.0, 3.0]), bad)  # type: ignore[arg-type]


@given(
    values=st.lists(
        st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0]), st.floats(allow_nan=False)),
        max_size=300,
    ),
    max_points=st.integers(2, 120),
)
def test_rows_keep_the_same_points_as_entities(values: list[float], max_points: int) -> None:
    rows = [(step * 3, value, step % 7) for step, value in enumerate(values)]
    points = metrics_of_rows("m", rows)
    assert metrics_of_rows("m", downsample_rows(rows, max_points)) == downsample(points, max_points)


def test_rows_tie_keeps_the_earliest_step() -> None:
    rows = [(0, 5.0, 0)] + [(s, 1.0, s) for s in range(1, 9)] + [(9, 5.0, 9)]
    assert downsample_rows(rows, 4) == [(0, 5.0, 0), (1, 1.0, 1), (9, 5.0, 9)]
