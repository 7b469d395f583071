"""A parsed run search as the stores receive it, and the total order its pages follow.

``search_runs`` parses the filter and ``order_by`` once (``tracking.search``) and hands the
stores a ``RunQuery``: the predicate (the reference evaluator, which the DynamoDB store runs on
run summaries and the SQLite store translates to SQL), the order keys (the caller's, then
``start_time DESC`` and ``run_id ASC``, so the order is total) and a fingerprint, so that a page
token from one search is refused by another.

The order is the one ``tracking.search.sort_runs`` defines: per key, runs missing the key come
last whatever the direction; numbers (values that parse as numbers) before text, each in the
key's direction. ``order_values`` and ``compare_orders`` express it as values a cursor can hold
(keyset pagination): page N starts strictly after the last run of page N-1, so it costs what
page 1 costs and a run logged meanwhile never shifts a page.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tracking.entities import Page, RunRecord
from tracking.errors import InvalidInput
from tracking.search import OrderKey, Predicate, _sortable, parse_filter, parse_order_by
from tracking.stores._tokens import decode_token, encode_token

#: One order key's value in a cursor: (missing, kind, number, text); see ``order_values``.
OrderValue = tuple[int, int, float, str]


@dataclass(frozen=True)
class RunQuery:
    """A parsed search: which runs (``predicate``, ``None`` for all) in which ``order``."""

    predicate: Predicate | None
    order: tuple[OrderKey, ...]
    fingerprint: str

    @property
    def index_ordered(self) -> bool:
        """Whether the order is the default one (newest start first, then run id).

        Both stores keep an index in that order, so such a search reads runs in order and
        stops when a page is full.
        """
        return len(self.order) == 2


def parse_query(filter: str | None = None, order_by: Sequence[str] | None = None) -> RunQuery:
    """Parse a filter expression and ``order_by`` clauses into a ``RunQuery``.

    Raises:
        InvalidInput: a malformed filter or order clause, saying where.
    """
    predicate = parse_filter(filter)
    order = tuple(parse_order_by(order_by))
    text = repr((filter or "", [str(clause) for clause in order_by or ()]))
    return RunQuery(predicate, order, hashlib.sha256(text.encode()).hexdigest()[:16])


#: Every run, newest first: what ``list_runs`` pages through.
ALL_RUNS = parse_query()


def matches(query: RunQuery, run: RunRecord) -> bool:
    return query.predicate is None or query.predicate(run)


def order_values(run: RunRecord, order: Sequence[OrderKey]) -> tuple[OrderValue, ...]:
    """The run's position in ``order`` as comparable values (``compare_orders``)."""
    values: list[OrderValue] = []
    for key in order:
        raw = key.field.value(run)
        if raw is None:
            values.append((1, 0, 0.0, ""))
            continue
        kind, number, text = _sortable(raw)
        values.append((0, kind, number, text))
    return tuple(values)


def compare_orders(
    left: Sequence[OrderValue], right: Sequence[OrderValue], order: Sequence[OrderKey]
) -> int:
    """-1, 0 or 1 as ``left`` comes before, with or after ``right`` in ``order``."""
    for (l_missing, *l_value), (r_missing, *r_value), key in zip(left, right, order, strict=True):
        if l_missing != r_missing:
            return -1 if l_missing < r_missing else 1
        if l_missing or l_value == r_value:
            continue
        before = l_value < r_value
        if key.descending:
            before = not before
        return -1 if before else 1
    return 0


def sort_key(order: Sequence[OrderKey]) -> Callable[[RunRecord], Any]:
    """A ``key=`` for ``sorted`` that orders runs as ``order`` does."""
    return functools.cmp_to_key(
        lambda left, right: compare_orders(
            order_values(left, order), order_values(right, order), order
        )
    )


# -- cursor values in page tokens -------------------------------------------------------------


def encode_order_values(values: Sequence[OrderValue]) -> list[list[int | str]]:
    """JSON-safe and exact: numbers as ``float.hex`` (a JSON float could round)."""
    return [[missing, kind, number.hex(), text] for missing, kind, number, text in values]


#: A cursor's text holds at most one param or tag value (6,000 characters) per order key.
_MAX_CURSOR_TEXT = 6000


def decode_order_values(raw: object, order: Sequence[OrderKey]) -> tuple[OrderValue, ...]:
    """The values ``encode_order_values`` wrote, checked as a crafted token would not be.

    Raises:
        InvalidInput: ``raw`` is not a cursor of this order.
    """
    if not isinstance(raw, list) or len(raw) != len(order):
        raise InvalidInput("invalid page token")
    values: list[OrderValue] = []
    for entry in raw:
        if not isinstance(entry, list) or len(entry) != 4:
            raise InvalidInput("invalid page token")
        missing, kind, number, text = entry
        if (
            missing not in (0, 1)
            or kind not in (0, 1)
            or isinstance(missing, bool)
            or isinstance(kind, bool)
            or not isinstance(number, str)
            or not isinstance(text, str)
            or len(number) > 40
            or len(text) > _MAX_CURSOR_TEXT
        ):
            raise InvalidInput("invalid page token")
        try:
            value = float.fromhex(number)
            text.encode()
        except (ValueError, OverflowError, UnicodeEncodeError):
            raise InvalidInput("invalid page token") from None
        values.append((missing, kind, value, text))
    return tuple(values)


def cursor_token(query: RunQuery, run: RunRecord) -> str:
    """The page token that resumes ``query`` strictly after ``run``."""
    return encode_token(
        {"q": query.fingerprint, "after": encode_order_values(order_values(run, query.order))}
    )


def decode_cursor(query: RunQuery, token: str) -> tuple[OrderValue, ...]:
    """The order values a ``cursor_token`` holds.

    Raises:
        InvalidInput: the token is not a cursor, or was made for another query.
    """
    state = decode_token(token, ("q",))
    if state["q"] != query.fingerprint:
        raise InvalidInput("page token belongs to a different search")
    return decode_order_values(state.get("after"), query.order)


def page_of(
    runs: Iterable[RunRecord], query: RunQuery, limit: int, page_token: str | None
) -> Page[RunRecord]:
    """One page of ``query`` over runs held in memory (each run once, in any order).

    The DynamoDB store uses it on run summaries when the order is not its index's; the cursor
    is the last run's order values, so a page never depends on an offset.

    Raises:
        InvalidInput: a page token that is not this query's.
    """
    after = decode_cursor(query, page_token) if page_token is not None else None
    found = [
        run
        for run in runs
        if matches(query, run)
        and (
            after is None or compare_orders(order_values(run, query.order), after, query.order) > 0
        )
    ]
    page = heapq.nsmallest(limit + 1, found, key=sort_key(query.order))
    items = page[:limit]
    token = cursor_token(query, items[-1]) if len(page) > limit else None
    return Page[RunRecord](items=items, next_token=token)
