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


def test_each_step_range_bucket_keeps_its_min_and_max() -> None:
    values = [float((i * 37) % 101) for i in range(1002)]
    points = _series(values)
    kept = downsample(points, 10)  # 4 buckets: width 256 is the first power of two with <= 4
    for index in range(4):
        bucket = [p for p in points if p.step // 256 == index]
        chosen = [p for p in kept if p.step // 256 == index]
        assert min(p.value for p in chosen) == min(p.value for p in bucket)
        assert max(p.value for p in chosen) == max(p.value for p in bucket)
    assert len(kept) <= 10


@pytest.mark.parametrize("max_points", [2, 3])
def test_no_bucket_fits_keeps_first_and_last(max_points: int) -> None:
    points = _series([5.0, -9.0, 9.0, 1.0])
    assert downsample(points, max_points) == [points[0], points[-1]]
    rows = [(p.step, p.value, p.timestamp) for p in points]
    assert downsample_rows(rows, max_points) == [rows[0], rows[-1]]


def test_buckets_are_step_ranges_not_positions() -> None:
    # Dense early (steps 0..999), sparse late (every 1000th up to 100,000): the width that
    # leaves at most 49 buckets is 4,096, so the first 1,000 points share one bucket.
    steps = list(range(1000)) + list(range(1000, 100_001, 1000))
    points = _series([float(s % 13) for s in steps], steps)
    kept = downsample(points, 100)
    dense = [p for p in kept if p.step < 1000]
    assert [p.step for p in dense] == [0, 12]  # first (a minimum 0.0) and the maximum 12.0
    assert len(kept) <= 100


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


def _expected(points: list[Metric], max_points: int) -> list[Metric]:
    """The rule restated: the smallest power-of-two width with at most B non-empty buckets,
    each bucket's earliest minimum and earliest maximum, and the first and last point."""
    if len(points) <= max_points:
        return points
    budget = (max_points - 2) // 2
    keep = {points[0].step, points[-1].step}
    if budget:
        width = 1
        while len({p.step // width for p in points}) > budget:
            width *= 2
        if width > 1:  # minimal: half the width leaves too many buckets
            assert len({p.step // (width // 2) for p in points}) > budget
        for bucket in {p.step // width for p in points}:
            members = [p for p in points if p.step // width == bucket]
            low = min(p.value for p in members)
            high = max(p.value for p in members)
            keep.add(next(p.step for p in members if p.value == low))
            keep.add(next(p.step for p in members if p.value == high))
    return [p for p in points if p.step in keep]


@given(
    steps=st.lists(st.integers(0, 5000), max_size=250, unique=True).map(sorted),
    data=st.data(),
    max_points=st.integers(2, 60),
)
def test_properties_of_the_rule(steps: list[int], data: st.DataObject, max_points: int) -> None:
    values = data.draw(
        st.lists(
            st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0]), st.floats(allow_nan=False)),
            min_size=len(steps),
            max_size=len(steps),
        )
    )
    points = _series(values, steps)
    kept = downsample(points, max_points)
    assert kept == _expected(points, max_points)
    assert len(kept) <= max_points
    assert [p.step for p in kept] == sorted({p.step for p in kept})
    assert all(p in points for p in kept)  # a subsequence: the same points, in step order
    if points:
        assert (kept[0], kept[-1]) == (points[0], points[-1])
    if points and (max_points >= 4 or len(points) <= max_points):  # 2, 3: no bucket fits
        assert min(p.value for p in kept) == min(values)
        assert max(p.value for p in kept) == max(values)
