"""The chunked layout of metric history in the metrics table (pure functions, no requests).

A chunk item holds up to ``CHUNK_STEPS`` consecutive steps of one metric of one run:

    ===========  ====================================================================
    attribute    value
    ===========  ====================================================================
    ``pk`` S     ``{run_id}#{key}#C``
    ``step`` N   the chunk's first step, ``step // CHUNK_STEPS * CHUNK_STEPS``
    ``p{o}`` S   the point at step ``step + o``: ``"{repr(value)} {timestamp}"``
    ===========  ====================================================================

The key schema is the one of the release that stored one item per point (``pk`` =
``{run_id}#{key}``, ``step`` = the step; see ``upgrade``): names and run ids never contain ``#``
(``tracking.validation``), so a legacy pk has one ``#`` and a chunk pk two, and the two kinds
cannot collide in the same table.

One top-level attribute per step makes a write ``UpdateItem SET p3 = :3, p4 = :4``: re-sending a
point overwrites it (idempotent), and writers of different steps of one chunk never read or
replace each other's attributes (no read-modify-write, nothing lost under concurrency). The value
is a string because DynamoDB numbers cannot hold the whole float range; ``repr`` round-trips
exactly.

Why ``CHUNK_STEPS = 100`` (figures from ``bench/metric_history.py``, recorded in its docstring):
a read costs bytes, not items — a Query page stops at 1 MB whatever the chunk size, so 100,000
points (~3.7 MB) are 4 pages at 100 steps per chunk as at 1,000. A write costs the item: an
UpdateItem consumes write units for the whole item (before or after, whichever is larger), so
small chunks keep an incremental write cheap (a full chunk is ~4 KB: at most 4 units, against 1
per point in the old layout and ~36 for 1,000-step chunks), and a chunk's 100 points always fit
one UpdateItem (expression ~800 bytes, limit 4 KB). Larger chunks save nothing on reads and cost
more on writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tracking.downsample import Row
from tracking.entities import Metric

#: Steps per chunk item. Fixed for a table's life: readers find a step's chunk from it.
CHUNK_STEPS = 100
#: Points per UpdateItem (see the module docstring for the measurements behind it).
MAX_POINTS_PER_UPDATE = 25
#: Our bound on one UpdateExpression (DynamoDB's limit is 4 KB).
MAX_EXPRESSION_BYTES = 4000
#: Run-item attribute value meaning "this run's history is only in chunks": set by
#: ``create_run`` of this release and by the upgrade once a run's legacy points are converted.
CHUNKED_FORMAT = 2
_CHUNK_SUFFIX = "#C"
_ATTRIBUTE_PREFIX = "p"


def legacy_pk(run_id: str, key: str) -> str:
    """The pk of the old release's one-item-per-point layout."""
    return f"{run_id}#{key}"


def chunk_pk(run_id: str, key: str) -> str:
    """The pk of a metric's chunk items."""
    return chunk_pk_of_legacy(legacy_pk(run_id, key))


def chunk_pk_of_legacy(pk: str) -> str:
    """The chunk pk of the same ``(run, key)`` as a legacy item's pk."""
    return pk + _CHUNK_SUFFIX


def is_chunk_pk(pk: str) -> bool:
    return pk.endswith(_CHUNK_SUFFIX)


def chunk_start(step: int) -> int:
    """The first step of the chunk holding ``step``."""
    return step // CHUNK_STEPS * CHUNK_STEPS


def encode_point(value: float, timestamp: int) -> str:
    return f"{float(value)!r} {int(timestamp)}"


def decode_chunk_rows(item: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """``(step, value, timestamp)`` of the points of one raw chunk item (as the DynamoDB API
    returns it), in step order; plain tuples: a caller builds entities only for what it keeps."""
    start = int(item["step"]["N"])
    found: list[tuple[int, str]] = []
    for name, value in item.items():
        if name.startswith(_ATTRIBUTE_PREFIX) and name[1:].isdigit():
            found.append((start + int(name[1:]), value["S"]))
    found.sort()
    rows: list[Row] = []
    for step, text in found:
        number, _, timestamp = text.partition(" ")
        rows.append((step, float(number), int(timestamp)))
    return rows


def group_chunks(points: Sequence[Metric]) -> dict[tuple[str, int], dict[int, Metric]]:
    """Points of one run by ``(key, chunk start)``, then by offset; a repeated ``(key, step)``
    keeps the last point given."""
    grouped: dict[tuple[str, int], dict[int, Metric]] = {}
    for point in points:
        start = chunk_start(point.step)
        grouped.setdefault((point.key, start), {})[point.step - start] = point
    return grouped


def chunk_item(pk: str, start: int, by_offset: Mapping[int, Metric]) -> dict[str, dict[str, str]]:
    """A whole chunk item holding these points (for a PutItem of a chunk that does not exist)."""
    item = {"pk": {"S": pk}, "step": {"N": str(start)}}
    for offset, point in by_offset.items():
        item[f"{_ATTRIBUTE_PREFIX}{offset}"] = {"S": encode_point(point.value, point.timestamp)}
    return item


def chunk_updates(
    by_offset: Mapping[int, Metric], *, keep_existing: bool = False
) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """UpdateItem parts ``(expression, values)`` setting these points of one chunk.

    At most ``MAX_POINTS_PER_UPDATE`` points and ``MAX_EXPRESSION_BYTES`` per part.
    ``keep_existing`` writes ``if_not_exists``: a point already in the chunk wins (the upgrade
    uses it, so it never replaces a newer point written meanwhile).
    """
    clauses: list[str] = []
    values: dict[str, dict[str, str]] = {}
    size = len("SET ")
    for offset in sorted(by_offset):
        point = by_offset[offset]
        name = f"{_ATTRIBUTE_PREFIX}{offset}"
        placeholder = f":{offset}"
        clause = (
            f"{name} = if_not_exists({name}, {placeholder})"
            if keep_existing
            else f"{name} = {placeholder}"
        )
        if clauses and (
            size + len(clause) + 2 > MAX_EXPRESSION_BYTES or len(clauses) >= MAX_POINTS_PER_UPDATE
        ):
            yield "SET " + ", ".join(clauses), values
            clauses, values, size = [], {}, len("SET ")
        clauses.append(clause)
        values[placeholder] = {"S": encode_point(point.value, point.timestamp)}
        size += len(clause) + 2
    if clauses:
        yield "SET " + ", ".join(clauses), values
