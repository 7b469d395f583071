"""Run search in SQL for the SQLite store: ``tracking.search``'s filter AST and order keys compiled
to one parameterised query, paged with a keyset cursor so page N costs what page 1 costs.

This module belongs in ``tracking/stores/sqlite/search.py`` once ``sqlite.py`` becomes a package
(a ``sqlite/`` package cannot sit next to ``sqlite.py``: it would shadow the module). It imports
nothing from the store, so the move is a rename.

Results are exactly those of the pure-Python reference, ``sort_runs([r for r in runs if
predicate(r)], order)`` over runs in ``list_runs`` order; ``tests/unit/test_sqlite_search.py``
checks that on random runs, filters and orders. How each part is translated:

- A comparison on ``metrics.k``/``params.k``/``tags.k`` is ``runs.run_id IN (SELECT run_id FROM
  <table> WHERE key = ? AND <condition on value>)``: a run without the key is simply not in the
  set, so it never matches (``!=`` and ``NOT IN`` included), and with ``SEARCH_INDEXES`` the set
  comes from an index range. Attributes are conditions on the ``runs`` columns. ``and``/``or``
  map to SQL; the language has no ``not``, so SQL's NULL (a missing ``run_name``) acts as false.
- Values are compared as the reference does (``tracking.search`` docstring): text against text
  by code point (``BINARY`` collation, UTF-8 byte order), numbers as numbers, and a number
  literal against a text value through ``search_number()``, a Python UDF with the exact
  ``float()`` rules; a value that is not a number gives NULL, i.e. no match. LIKE/ILIKE call
  ``search_like()``, the reference matcher itself (SQLite's LIKE folds ASCII case and has other
  ``_``/``%``/ESCAPE rules).
- Order: per key, ``(value IS NULL)`` first (missing last in both directions), then the value:
  a REAL/INTEGER column as is, a text value through ``search_sort_key()``, a BLOB whose byte
  order is the reference ``_sortable`` order (numbers first, by value; then texts by code
  point). The last term is ``runs.run_id`` as raw text, the reference's stable-sort fallback
  (its input is in ``list_runs`` order).
- Keyset: the cursor holds the last row's raw value of every order key (``None`` when missing)
  and its ``run_id``; the next page is the rows strictly after it in that lexicographic order.

Page token: ``encode_token({"q": <fingerprint>, "k": <n>, "c0": ..., "c<n-1>": ...})`` where the
chunks ``c*`` (at most 2,048 characters each, ``decode_token``'s limit) concatenate to a JSON
array, one entry per order key plus the run id: ``null`` for a missing value, a metric as
``float.hex()`` text (exact), a time as an integer, text as text. ``decode_page_token`` refuses a
token of another search (``q``) and any entry of the wrong type or count with ``InvalidInput``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import TypeAdapter

from tracking.entities import Artifact, Dataset, Metric, RunRecord, RunStatus
from tracking.errors import InvalidInput, StoreUnavailable
from tracking.search import (
    BoolOp,
    Comparison,
    Field,
    OrderKey,
    Predicate,
    as_number,
    like_match,
)
from tracking.stores._tokens import check_page_size, decode_token, encode_token

#: Indexes the search needs, for the store's schema. ``(key, value, run_id)`` covers the
#: ``SELECT run_id ... WHERE key = ? AND value <op> ?`` sets, so a metric comparison reads an
#: index range instead of every row of ``latest_metrics``. The same index on ``params`` and
#: ``tags`` halved a param filter's time but cost a third of the write throughput of a run
#: (measured with bench/search_scale.py: 1,453 against 969 runs/s with it, the previous release
#: 1,397-1,977): a param or tag comparison scans those tables instead, ~10 ms at 10,000 runs.
SEARCH_INDEXES = """
CREATE INDEX IF NOT EXISTS latest_metrics_by_key_value ON latest_metrics (key, value, run_id);
"""

#: The largest page, as ``ExperimentLogger.search_runs`` allows.
MAX_RESULTS = 1000

#: One cursor entry: a metric (float), a time (int), a text, or ``None`` for a missing value.
CursorValue: TypeAlias = float | int | str | None

_TABLES = {"metrics": "latest_metrics", "params": "params", "tags": "tags"}
_COLUMNS = {
    "status": "runs.status",
    "run_name": "runs.run_name",
    "run_id": "runs.run_id",
    "start_time": "runs.start_time",
    "end_time": "runs.end_time",
}
_NOT_NULL = {"status", "run_id", "start_time"}
_TIMES = {"start_time", "end_time"}
_SQL_OPS = {
    "=": "=", "==": "=", "!=": "<>", "<>": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<=",
}  # fmt: skip
#: ``decode_token`` holds texts of at most this many characters per field.
_CHUNK = 2048
#: A crafted token cannot make us join more than this many chunks (512K characters).
_MAX_CHUNKS = 256
_INT64 = 2**63 - 1


# -- SQL functions ---------------------------------------------------------------------------


def sort_key(value: str) -> bytes:
    """The BLOB whose byte order is the reference order (``tracking.search._sortable``) of texts.

    A number is ``0x00`` and its IEEE-754 bits made order-preserving (sign bit flipped for
    positives, all bits for negatives); any other text is ``0x01`` and its UTF-8 bytes, whose
    order is code point order. ``-0.0`` becomes ``0.0`` first: Python sees them as equal.
    """
    number = as_number(value)
    if number is None:
        return b"\x01" + value.encode()
    bits: int = struct.unpack(">Q", struct.pack(">d", number + 0.0))[0]
    bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | 1 << 63
    return b"\x00" + bits.to_bytes(8, "big")


def _sql_number(value: object) -> float | None:
    return as_number(value) if isinstance(value, str) else None


def _sql_like(value: object, pattern: object, ignore_case: object) -> bool | None:
    if not isinstance(pattern, str):
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        # A time column arrives as an integer; the reference matches it as str(float(value)).
        text = str(float(value))
    else:  # NULL: a run without run_name or end_time never matches
        return None
    return like_match(text, pattern, bool(ignore_case))


def _sql_sort_key(value: object) -> bytes:
    return sort_key(value) if isinstance(value, str) else b""


def register_functions(conn: sqlite3.Connection) -> None:
    """Register ``search_number``, ``search_like`` and ``search_sort_key`` on ``conn``.

    Call it once per connection (the store's ``_connect``); ``search_runs`` registers them
    itself when they are missing. All three are deterministic.
    """
    conn.create_function("search_number", 1, _sql_number, deterministic=True)
    conn.create_function("search_like", 3, _sql_like, deterministic=True)
    conn.create_function("search_sort_key", 1, _sql_sort_key, deterministic=True)


def _ensure_functions(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("SELECT search_sort_key('')").fetchone()
    except sqlite3.OperationalError:  # "no such function"
        register_functions(conn)


# -- the filter ------------------------------------------------------------------------------

_Sql: TypeAlias = tuple[str, list[Any]]


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _predicate(node: Predicate) -> _Sql:
    if isinstance(node, BoolOp):
        parts = [_predicate(part) for part in node.parts]
        joiner = " AND " if node.op == "and" else " OR "
        return (
            "(" + joiner.join(sql for sql, _ in parts) + ")",
            [arg for _, args in parts for arg in args],
        )
    return _comparison(node)


def _comparison(node: Comparison) -> _Sql:
    field = node.field
    table = _TABLES.get(field.kind)
    if table is not None:
        condition, args = _condition("value", field.kind == "metrics", node)
        # Table names come from _TABLES, never from the filter; the key is a bound parameter.
        return (
            f"runs.run_id IN (SELECT run_id FROM {table} WHERE key = ? AND {condition})",
            [field.key, *args],
        )
    return _condition(_COLUMNS[field.key], field.key in _TIMES, node)


def _condition(column: str, numeric: bool, node: Comparison) -> _Sql:
    """SQL true exactly when ``node`` holds for a present ``column`` value (NULL: no match)."""
    literal = node.literal
    if node.op in {"like", "ilike"}:
        return f"search_like({column}, ?, ?)", [literal, int(node.op == "ilike")]
    if isinstance(literal, tuple):
        values: list[Any] = list(literal)
        expression = column
        if numeric:
            # A text literal against a number must be a number; one that is not never equals
            # (IN drops it) and never differs (NOT IN cannot hold).
            numbers = [as_number(value) for value in literal]
            if node.op == "in":
                values = [number for number in numbers if number is not None]
            elif None in numbers:
                values = []
            else:
                values = numbers
            if not values:
                return "0", []
        elif isinstance(literal[0], float):
            expression = f"search_number({column})"
        keyword = "IN" if node.op == "in" else "NOT IN"
        return f"{expression} {keyword} ({_placeholders(len(values))})", values
    op = _SQL_OPS[node.op]
    if numeric:
        number = as_number(literal)
        return ("0", []) if number is None else (f"{column} {op} ?", [number])
    if isinstance(literal, float):
        return f"search_number({column}) {op} ?", [literal]
    return f"{column} {op} ?", [literal]


# -- the order and the cursor ----------------------------------------------------------------


def _is_text(field: Field) -> bool:
    return field.kind in {"params", "tags"} or (
        field.kind == "attributes" and field.key not in _TIMES
    )


def _nullable(field: Field) -> bool:
    return field.kind != "attributes" or field.key not in _NOT_NULL


def _value_term(field: Field, raw: str) -> str:
    return f"search_sort_key({raw})" if _is_text(field) else raw


def _keyset(raws: Sequence[str], order: Sequence[OrderKey], after: Sequence[CursorValue]) -> _Sql:
    """Rows strictly after the cursor ``after`` in the order: lexicographic, missing last."""
    sql, args = "runs.run_id > ?", [after[-1]]
    for key, raw, value in reversed(list(zip(order, raws, after[:-1], strict=True))):
        if value is None:
            # The cursor row lacks the key: only rows lacking it too can follow it here.
            sql, args = f"({raw} IS NULL AND {sql})", args
            continue
        bound: Any = sort_key(value) if isinstance(value, str) else value
        term = _value_term(key.field, raw)
        beyond = f"{term} {'<' if key.descending else '>'} ?"
        if _nullable(key.field):
            beyond = f"{raw} IS NULL OR {beyond}"
        sql = f"({beyond} OR ({term} = ? AND {sql}))"
        args = [bound, bound, *args]
    return sql, args


def compile_search(
    *,
    experiment_id: str,
    predicate: Predicate | None,
    order: Sequence[OrderKey],
    limit: int,
    after: Sequence[CursorValue] | None,
    experiment_name: str | None = None,
) -> tuple[str, list[Any]]:
    """The query for one page of a search, and its parameters.

    It selects ``runs.*`` (plus ``experiment_name`` when given, as ``list_runs`` rows have it)
    and ``search_raw_<i>``, the raw value of order key ``i``, for the runs of ``experiment_id``
    that match ``predicate``, in the reference order, after the cursor ``after`` (from
    ``cursor_from_row``/``decode_page_token``), ``limit + 1`` rows so the caller knows whether a
    next page exists. It needs ``register_functions`` on the connection.

    Raises:
        InvalidInput: ``after`` does not have one entry per order key plus the run id.
    """
    if after is not None and len(after) != len(order) + 1:
        raise InvalidInput("invalid page token")
    joins: list[str] = []
    join_args: list[Any] = []
    raws: list[str] = []
    for index, key in enumerate(order):
        table = _TABLES.get(key.field.kind)
        if table is None:
            raws.append(_COLUMNS[key.field.key])
            continue
        alias = f"o{index}"
        joins.append(
            f"LEFT JOIN {table} AS {alias} ON {alias}.run_id = runs.run_id AND {alias}.key = ?"
        )
        join_args.append(key.field.key)
        raws.append(f"{alias}.value")
    select = ["runs.*"]
    select_args: list[Any] = []
    if experiment_name is not None:
        select.append("? AS experiment_name")
        select_args.append(experiment_name)
    select += [f"{raw} AS search_raw_{index}" for index, raw in enumerate(raws)]
    where, where_args = ["runs.experiment_id = ?"], [experiment_id]
    if predicate is not None:
        sql, args = _predicate(predicate)
        where.append(sql)
        where_args += args
    if after is not None:
        sql, args = _keyset(raws, order, after)
        where.append(sql)
        where_args += args
    terms: list[str] = []
    for key, raw in zip(order, raws, strict=True):
        if _nullable(key.field):
            terms.append(f"({raw} IS NULL)")
        terms.append(f"{_value_term(key.field, raw)} {'DESC' if key.descending else 'ASC'}")
    terms.append("runs.run_id ASC")
    query = (
        f"SELECT {', '.join(select)} FROM runs {' '.join(joins)} "
        f"WHERE {' AND '.join(where)} ORDER BY {', '.join(terms)} LIMIT ?"
    )
    return query, [*select_args, *join_args, *where_args, limit + 1]


def cursor_from_row(row: sqlite3.Row, order: Sequence[OrderKey]) -> list[CursorValue]:
    """The cursor after ``row`` (a row of ``compile_search``): each order key's raw value, then
    the run id."""
    values: list[CursorValue] = []
    for index, key in enumerate(order):
        value = row[f"search_raw_{index}"]
        if key.field.kind == "metrics" and isinstance(value, int):
            value = float(value)
        values.append(value)
    values.append(row["run_id"])
    return values


def search_fingerprint(
    *, experiment_id: str, filter_text: str | None, order_by: Sequence[str] | None
) -> str:
    """A short digest naming one search, carried by its page tokens."""
    text = json.dumps([experiment_id, filter_text or "", list(order_by or ())])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def encode_page_token(cursor: Sequence[CursorValue], *, fingerprint: str) -> str:
    """The opaque token for the page after ``cursor`` (format in the module docstring)."""
    entries = [value.hex() if isinstance(value, float) else value for value in cursor]
    payload = json.dumps(entries, ensure_ascii=False, separators=(",", ":"))
    chunks = [payload[start : start + _CHUNK] for start in range(0, len(payload), _CHUNK)]
    state: dict[str, Any] = {"q": fingerprint, "k": len(chunks)}
    state.update({f"c{index}": chunk for index, chunk in enumerate(chunks)})
    return encode_token(state)


def decode_page_token(
    token: str, *, order: Sequence[OrderKey], fingerprint: str
) -> list[CursorValue]:
    """The cursor a token of this search carries.

    Raises:
        InvalidInput: "page token belongs to a different search" when it was made for another
            filter, order or experiment; "invalid page token" when it is not one of ours or an
            entry has the wrong type or count.
    """
    if not isinstance(token, str):
        raise InvalidInput("invalid page token")
    head = decode_token(token, ("q", "k"))
    if head["q"] != fingerprint:
        raise InvalidInput("page token belongs to a different search")
    count = head["k"]
    if not isinstance(count, int) or not 1 <= count <= _MAX_CHUNKS:
        raise InvalidInput("invalid page token")
    state = decode_token(token, tuple(f"c{index}" for index in range(count)))
    chunks = [state[f"c{index}"] for index in range(count)]
    if not all(isinstance(chunk, str) for chunk in chunks):
        raise InvalidInput("invalid page token")
    try:
        entries = json.loads("".join(chunks))
    except ValueError:
        raise InvalidInput("invalid page token") from None
    if not isinstance(entries, list) or len(entries) != len(order) + 1:
        raise InvalidInput("invalid page token")
    cursor = [_entry(entry, key.field) for entry, key in zip(entries, order, strict=False)]
    cursor.append(_text_entry(entries[-1]))
    return cursor


def _entry(entry: object, field: Field) -> CursorValue:
    if entry is None:
        if not _nullable(field):
            raise InvalidInput("invalid page token")
        return None
    if field.kind == "metrics":
        if not isinstance(entry, str):
            raise InvalidInput("invalid page token")
        try:
            number = float.fromhex(entry)
        except (ValueError, OverflowError):
            raise InvalidInput("invalid page token") from None
        if number != number:  # NaN: no metric holds it, and it would compare with nothing
            raise InvalidInput("invalid page token")
        return number
    if field.kind == "attributes" and field.key in _TIMES:
        if isinstance(entry, bool) or not isinstance(entry, int) or abs(entry) > _INT64:
            raise InvalidInput("invalid page token")
        return entry
    return _text_entry(entry)


def _text_entry(entry: object) -> str:
    if not isinstance(entry, str):
        raise InvalidInput("invalid page token")
    try:
        entry.encode()
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: SQLite cannot bind it
        raise InvalidInput("invalid page token") from None
    return entry


# -- the store's entry point -----------------------------------------------------------------


@dataclass(frozen=True)
class SearchPage:
    """One page of ``search_runs``: ``runs`` rows (with ``experiment_name``) in order, and the
    token of the next page (``None`` on the last)."""

    rows: list[sqlite3.Row]
    next_token: str | None


def search_runs(
    conn: sqlite3.Connection,
    *,
    experiment_id: str,
    experiment_name: str,
    predicate: Predicate | None,
    order: Sequence[OrderKey],
    max_results: int,
    page_token: str | None,
    fingerprint: str,
) -> SearchPage:
    """One page of the runs of an experiment that match ``predicate``, in ``order``.

    ``predicate`` and ``order`` come from ``parse_filter``/``parse_order_by``; ``fingerprint``
    from ``search_fingerprint`` of the same request. Run it inside the store's read
    transaction and build the page's runs with ``load_runs`` (a fixed number of queries).

    Raises:
        InvalidInput: ``max_results`` is not 1..``MAX_RESULTS``; the page token is not ours or
            belongs to a different search; a literal is not valid Unicode.
        StoreUnavailable: SQLite failed.
    """
    limit = check_page_size(max_results, MAX_RESULTS)
    after = None
    if page_token is not None:
        after = decode_page_token(page_token, order=order, fingerprint=fingerprint)
    query, args = compile_search(
        experiment_id=experiment_id,
        experiment_name=experiment_name,
        predicate=predicate,
        order=order,
        limit=limit,
        after=after,
    )
    try:
        _ensure_functions(conn)
        cursor = conn.cursor()
        cursor.row_factory = sqlite3.Row
        rows: list[sqlite3.Row] = cursor.execute(query, args).fetchall()
    except UnicodeEncodeError:
        raise InvalidInput("filter: text must be valid Unicode (no lone surrogates)") from None
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"SQLite search failed: {exc}") from exc
    items = rows[:limit]
    token = None
    if len(rows) > limit:
        token = encode_page_token(cursor_from_row(items[-1], order), fingerprint=fingerprint)
    return SearchPage(rows=items, next_token=token)


_METRICS = TypeAdapter(list[Metric])


def load_runs(conn: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> list[RunRecord]:
    """Complete runs for ``rows`` (``runs.*`` plus ``experiment_name``), in the same order, in
    five queries whatever the page size (params, tags, latest metrics, datasets, artifacts).

    Raises:
        StoreUnavailable: SQLite failed.
    """
    ids = [row["run_id"] for row in rows]
    if not ids:
        return []
    marks = _placeholders(len(ids))
    params: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
    tags: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
    metrics: dict[str, dict[str, Metric]] = {run_id: {} for run_id in ids}
    datasets: dict[str, dict[str, Dataset]] = {run_id: {} for run_id in ids}
    artifacts: dict[str, dict[str, Artifact]] = {run_id: {} for run_id in ids}
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    try:
        for r in cursor.execute(f"SELECT * FROM params WHERE run_id IN ({marks})", ids):
            params[r["run_id"]][r["key"]] = r["value"]
        for r in cursor.execute(f"SELECT * FROM tags WHERE run_id IN ({marks})", ids):
            tags[r["run_id"]][r["key"]] = r["value"]
        # One pydantic-core call for the page's metrics: a page of runs with 1,000 metric keys
        # each is 50,000 of them, and one Metric(...) per row was most of its time
        # (bench/ui_bench.py, wide runs).
        plain = conn.cursor()
        plain.row_factory = None
        latest = plain.execute(
            "SELECT run_id, key, step, value, timestamp FROM latest_metrics "
            f"WHERE run_id IN ({marks})",
            ids,
        ).fetchall()
        built = _METRICS.validate_python(
            [{"key": key, "value": value, "step": step, "timestamp": timestamp}
             for _, key, step, value, timestamp in latest]
        )  # fmt: skip
        for (run_id, key, *_), metric in zip(latest, built, strict=True):
            metrics[run_id][key] = metric
        for r in cursor.execute(f"SELECT * FROM datasets WHERE run_id IN ({marks})", ids):
            datasets[r["run_id"]][r["name"]] = Dataset(
                name=r["name"],
                uri=r["uri"],
                digest=r["digest"],
                digest_algorithm=r["digest_algorithm"],
                size=r["size"],
                version_id=r["version_id"],
                logged_at=r["logged_at"],
            )
        for r in cursor.execute(f"SELECT * FROM artifacts WHERE run_id IN ({marks})", ids):
            artifacts[r["run_id"]][r["name"]] = Artifact(
                name=r["name"],
                uri=r["uri"],
                sha256=r["sha256"],
                size=r["size"],
                created_at=r["created_at"],
            )
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
    return [
        RunRecord(
            run_id=row["run_id"],
            experiment_id=row["experiment_id"],
            experiment_name=row["experiment_name"],
            run_name=row["run_name"],
            status=RunStatus(row["status"]),
            start_time=row["start_time"],
            end_time=row["end_time"],
            parent_run_id=row["parent_run_id"],
            params=params[row["run_id"]],
            metrics=metrics[row["run_id"]],
            tags=tags[row["run_id"]],
            datasets=datasets[row["run_id"]],
            artifacts=artifacts[row["run_id"]],
        )
        for row in rows
    ]
