"""Downsampling a metric history for charts, keeping its extremes.

``downsample(points, max_points)`` returns ``points`` unchanged when there are at most
``max_points`` of them. Otherwise it keeps:

- the first and the last point (the chart's x range and the final value), and
- for the points in between, split into ``(max_points - 2) // 2`` buckets of consecutive points
  (by position in step order, sizes differing by at most one), each bucket's lowest and highest
  value, in step order; one point when they are the same point. Ties keep the earliest step.

So a spike (a single very high or very low value) always survives: it is the maximum or the
minimum of its bucket. The result is in step order, a subsequence of the input, and has at most
``max_points`` points (one fewer when ``max_points`` is odd: a bucket needs two slots).

Buckets are by position rather than by step range: with irregular steps (dense early logging,
sparse later) a step range leaves some buckets empty and crowds others, whereas positions use the
whole budget; for the usual one-point-per-step history both are the same buckets.

``downsample_rows`` is the same algorithm on raw ``(step, value, timestamp)`` tuples, for the
stores: building a ``Metric`` per point of a 100,000-point history costs ~8x its SQL read, so a
store picks the kept rows first and builds entities only for them. ``downsample`` stays the
plain statement of the rule the stores' results are tested against.
"""

from __future__ import annotations

from collections.abc import Sequence

from tracking.entities import Metric
from tracking.errors import InvalidInput

#: One raw point as the stores read it: ``(step, value, timestamp)``.
Row = tuple[int, float, int]

#: The fewest points a downsampled history may ask for: the first and the last.
MIN_POINTS = 2


def check_max_points(max_points: object) -> int:
    """Return ``max_points`` if it is a valid downsampling budget.

    Raises:
        InvalidInput: not an integer (``bool`` included), or below ``MIN_POINTS``.
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < MIN_POINTS:
        raise InvalidInput(
            f"max_points must be an integer of at least {MIN_POINTS} (the first and last point)"
        )
    return max_points


def downsample(points: Sequence[Metric], max_points: int) -> list[Metric]:
    """Reduce a history in step order to at most ``max_points`` points, keeping its extremes.

    Args:
        points: one metric's points in step order (as the stores return them).
        max_points: the budget, at least 2.

    Returns:
        ``points`` as a new list when it fits, else the first point, each bucket's minimum and
        maximum in step order, and the last point (see the module docstring).

    Raises:
        InvalidInput: ``max_points`` is not an integer of at least 2.
    """
    budget = check_max_points(max_points)
    if len(points) <= budget:
        return list(points)
    inner = points[1:-1]
    buckets = (budget - 2) // 2
    kept = [points[0]]
    for index in range(buckets):
        bucket = inner[index * len(inner) // buckets : (index + 1) * len(inner) // buckets]
        if not bucket:
            continue
        low = min(range(len(bucket)), key=lambda i: bucket[i].value)
        high = max(range(len(bucket)), key=lambda i: (bucket[i].value, -i))
        for position in sorted({low, high}):
            kept.append(bucket[position])
    kept.append(points[-1])
    return kept


def downsample_rows(rows: Sequence[Row], max_points: int) -> list[Row]:
    """``downsample`` on ``(step, value, timestamp)`` tuples in step order: the same rows kept.

    Each bucket's extremes come from ``min``/``max`` and ``list.index`` on a slice of the values
    (C loops, not a Python ``key`` per point); ``index`` finds the first occurrence, which is
    the earliest-step tie rule of ``downsample``.

    Raises:
        InvalidInput: ``max_points`` is not an integer of at least 2.
    """
    budget = check_max_points(max_points)
    if len(rows) <= budget:
        return list(rows)
    values = [row[1] for row in rows[1:-1]]
    buckets = (budget - 2) // 2
    kept = [rows[0]]
    for index in range(buckets):
        start = index * len(values) // buckets
        bucket = values[start : (index + 1) * len(values) // buckets]
        if not bucket:
            continue
        low = bucket.index(min(bucket))
        high = bucket.index(max(bucket))
        for position in sorted({low, high}):
            kept.append(rows[1 + start + position])
    kept.append(rows[-1])
    return kept


def metrics_of_rows(key: str, rows: Sequence[Row]) -> list[Metric]:
    """Entities of rows read back from a store (validated when written, so not re-validated)."""
    return [
        Metric.model_construct(key=key, value=value, step=step, timestamp=timestamp)
        for step, value, timestamp in rows
    ]
