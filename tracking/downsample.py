"""Downsampling a metric history for charts, keeping its extremes.

``downsample(points, max_points)`` returns ``points`` unchanged (a new list) when there are at
most ``max_points`` of them. Otherwise, with a budget of ``B = (max_points - 2) // 2`` buckets:

- the points are grouped by step range: a point's bucket is ``step // w``, where the width ``w``
  is the smallest power of two (1, 2, 4, ...) that leaves at most ``B`` non-empty buckets;
- each bucket keeps its lowest-value and its highest-value point (one point when they are the
  same point; ties keep the earliest step);
- and the first and the last point of the history are kept (the chart's x range and the final
  value). When ``B`` is 0 (``max_points`` 2 or 3) only these two are kept.

Buckets cover every point, the first and the last included. So a spike (a single very high or
very low value) always survives: it is the maximum or the minimum of its bucket. The result is
in step order, without repeats, a subsequence of the input, and has at most ``2 + 2 * B <=
max_points`` points.

The trade-off: buckets by step range rather than by position. For the usual one-point-per-step
history they are equal-sized, but for irregular steps (dense early logging, sparse later) a
step range leaves few points in the sparse buckets and many in the dense ones, so the chart is
coarser there than ``max_points`` could afford; a power-of-two width also rounds the number of
buckets down, to roughly between ``B / 2`` and ``B`` for a contiguous history. In exchange,
the result depends only on each aligned step range's count and extremes and on the end points,
so a store can compute it from a summary of fixed step blocks kept at write time (SQLite's
``metric_blocks``) instead of reading every point.

``downsample_rows`` is the same rule on raw ``(step, value, timestamp)`` tuples, for the stores:
building a ``Metric`` per point of a 100,000-point history costs more than its SQL read, so a
store picks the kept rows first and builds entities only for them. ``downsample`` stays the plain
statement of the rule the stores' results are tested against.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from pydantic import TypeAdapter

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


def bucket_budget(max_points: int) -> int:
    """``B``: how many buckets a budget of ``max_points`` points affords (two points each, after
    the first and the last)."""
    return (max_points - 2) // 2


def downsample(points: Sequence[Metric], max_points: int) -> list[Metric]:
    """Reduce a history in step order to at most ``max_points`` points, keeping its extremes.

    Args:
        points: one metric's points in step order, steps unique (as the stores return them).
        max_points: the budget, at least 2.

    Returns:
        ``points`` as a new list when it fits, else the first and the last point and each
        step-range bucket's minimum and maximum, in step order (see the module docstring).

    Raises:
        InvalidInput: ``max_points`` is not an integer of at least 2.
    """
    budget = check_max_points(max_points)
    if len(points) <= budget:
        return list(points)
    buckets = bucket_budget(budget)
    kept = {points[0].step: points[0], points[-1].step: points[-1]}
    if buckets:
        width = 1
        while len({point.step // width for point in points}) > buckets:
            width *= 2
        grouped: dict[int, list[Metric]] = {}
        for point in points:
            grouped.setdefault(point.step // width, []).append(point)
        for members in grouped.values():
            # min and max return the first of equal candidates: the earliest step.
            for extreme in (min(members, key=_value), max(members, key=_value)):
                kept[extreme.step] = extreme
    return [kept[step] for step in sorted(kept)]


def _value(point: Metric) -> float:
    return point.value


def downsample_rows(rows: Sequence[Row], max_points: int) -> list[Row]:
    """``downsample`` on ``(step, value, timestamp)`` tuples in step order: the same rows kept.

    The width comes from one pass over neighbouring steps: two consecutive steps ``a < b`` share
    a bucket of width ``2**j`` exactly when ``j >= (a ^ b).bit_length()``, so a histogram of
    those bit lengths gives the bucket count of every width at once. A bucket is then a slice of
    consecutive rows, and its extremes come from ``min``/``max`` and ``list.index`` on the
    slice's values (C loops, not a Python ``key`` per point); ``index`` finds the first
    occurrence, which is the earliest-step tie rule.

    Raises:
        InvalidInput: ``max_points`` is not an integer of at least 2.
    """
    budget = check_max_points(max_points)
    if len(rows) <= budget:
        return list(rows)
    buckets = bucket_budget(budget)
    kept = {rows[0][0]: rows[0], rows[-1][0]: rows[-1]}
    if buckets:
        steps = [row[0] for row in rows]
        splits = [(a ^ b).bit_length() for a, b in itertools.pairwise(steps)]
        histogram = [0] * (max(splits) + 1)
        for bits in splits:
            histogram[bits] += 1
        # At width 2**j the buckets are 1 + the neighbours split at j, i.e. with bits > j.
        shift, count = 0, len(rows)
        while count > buckets:
            shift += 1
            count -= histogram[shift]
        starts = [0] + [index + 1 for index, bits in enumerate(splits) if bits > shift]
        values = [row[1] for row in rows]
        for start, end in zip(starts, [*starts[1:], len(rows)], strict=True):
            bucket = values[start:end]
            for extreme in (min(bucket), max(bucket)):
                row = rows[start + bucket.index(extreme)]
                kept[row[0]] = row
    return [kept[step] for step in sorted(kept)]


#: Validates a whole list in one pydantic-core call: ~2.5x faster than ``model_construct`` per
#: point (pydantic v2's unvalidated path is a Python loop over the fields).
_METRICS = TypeAdapter(list[Metric])


def metrics_of_rows(key: str, rows: Sequence[Row]) -> list[Metric]:
    """Entities of rows read back from a store, in their order."""
    return _METRICS.validate_python(
        [
            {"key": key, "value": value, "step": step, "timestamp": timestamp}
            for step, value, timestamp in rows
        ]
    )
