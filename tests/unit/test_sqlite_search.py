"""Search in SQL (``tracking.stores.sqlite.search``) against the pure-Python reference.

Runs are written through ``SQLiteStore`` (the real write path) into a file in
``tmp_path``, with ``SEARCH_INDEXES`` added to its schema.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.search_strategies import (
    RunSpec,
    filters,
    orders,
    reference_search,
    run_specs,
    texts,
    write_runs,
)
from tracking.entities import Artifact, Dataset, Experiment, RunStatus
from tracking.errors import InvalidInput
from tracking.search import _sortable, parse_filter, parse_order_by
from tracking.stores._tokens import encode_token
from tracking.stores.sqlite import SQLiteStore
from tracking.stores.sqlite import search as sqlite_search


def open_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.db.connection().executescript(sqlite_search.SEARCH_INDEXES)
    return store


def search_page(
    store: SQLiteStore,
    experiment: Experiment,
    filter_text: str | None,
    order_by: Sequence[str] | None,
    page_size: int,
    token: str | None,
) -> sqlite_search.SearchPage:
    with store.db.read() as conn:
        return sqlite_search.search_runs(
            conn,
            experiment_id=experiment.experiment_id,
            experiment_name=experiment.name,
            predicate=parse_filter(filter_text),
            order=parse_order_by(order_by),
            max_results=page_size,
            page_token=token,
            fingerprint=sqlite_search.search_fingerprint(
                experiment_id=experiment.experiment_id,
                filter_text=filter_text,
                order_by=order_by,
            ),
        )


def sql_search(
    store: SQLiteStore,
    experiment: Experiment,
    filter_text: str | None,
    order_by: Sequence[str] | None = None,
    page_size: int = 1000,
) -> list[str]:
    """Every page of the SQL search, concatenated."""
    ids: list[str] = []
    token = None
    for _ in range(10_000):  # a cursor that does not advance must fail, not hang
        page = search_page(store, experiment, filter_text, order_by, page_size, token)
        assert len(page.rows) <= page_size
        ids += [row["run_id"] for row in page.rows]
        if page.next_token is None:
            return ids
        assert len(page.rows) == page_size  # a full page whenever another follows
        assert len(ids) == len(set(ids)), "a run came back twice"
        token = page.next_token
    raise AssertionError("paging did not end")


SPECS = [
    RunSpec(
        "r1",
        10,
        "xgb-5",
        RunStatus.FINISHED,
        15,
        params={"depth": "5", "model": "xgb"},
        tags={"team": "ds"},
        metrics={"auc": 0.9, "loss": 0.2},
    ),
    RunSpec(
        "r2",
        20,
        "lgbm-6",
        RunStatus.FINISHED,
        25,
        params={"depth": "6", "model": "lgbm"},
        tags={"team": "ML"},
        metrics={"auc": 0.7},
    ),
    RunSpec(
        "r3",
        30,
        None,
        RunStatus.FAILED,
        params={"depth": "10", "model": "XGB"},
        metrics={"auc": 0.85},
    ),
    RunSpec("r4", 40, "xgb_5", params={"depth": "5"}, tags={"team": "ds"}),
    RunSpec(
        "r5",
        40,
        "100%",
        RunStatus.FINISHED,
        50,
        params={"depth": "deep", "model": "a%b"},
        tags={"team": "ml"},
        metrics={"auc": 0.7},
    ),
    RunSpec(
        "r6",
        5,
        "Été",
        RunStatus.KILLED,
        6,
        params={"depth": " 7 ", "model": "a_b"},
        tags={"team": "it's"},
        metrics={"auc": -0.0, "loss": 1e300},
    ),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = open_store(tmp_path / "search.db")
    yield store
    store.close()


@pytest.fixture
def experiment(store: SQLiteStore) -> Experiment:
    experiment = store.create_experiment("search")
    write_runs(store, experiment, SPECS)
    # Another experiment's runs never show up.
    other = store.create_experiment("other")
    write_runs(store, other, [RunSpec("o1", 99, params={"depth": "5"}, metrics={"auc": 0.99})])
    return experiment


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        (None, {"r1", "r2", "r3", "r4", "r5", "r6"}),
        ("metrics.auc > 0.7", {"r1", "r3"}),
        ("metrics.auc >= 0.7", {"r1", "r2", "r3", "r5"}),
        ("metrics.auc < 0.7", {"r6"}),
        ("metrics.auc <= 0", {"r6"}),  # -0.0 equals 0
        ("metrics.auc = 0.7", {"r2", "r5"}),
        ("metrics.auc == 0.7", {"r2", "r5"}),
        ("metrics.auc != 0.7", {"r1", "r3", "r6"}),  # r4 has no auc: never matches
        ("metrics.auc <> 0.7", {"r1", "r3", "r6"}),
        ("metrics.loss > 1e299", {"r6"}),
        ("params.depth = '5'", {"r1", "r4"}),
        ("params.depth != '5'", {"r2", "r3", "r5", "r6"}),
        ("params.depth > '5'", {"r2", "r5"}),  # text: '10' < '5' < '6' < 'deep'
        ("params.depth > 5", {"r2", "r3", "r6"}),  # numbers: 6, 10, ' 7 '; 'deep' never
        ("params.depth != 5", {"r2", "r3", "r6"}),
        ("params.depth = 7", {"r6"}),
        ("params.depth IN ('5', '6')", {"r1", "r2", "r4"}),
        ("params.depth NOT IN ('5', '6')", {"r3", "r5", "r6"}),
        ("params.depth IN (5, 10)", {"r1", "r3", "r4"}),
        ("params.depth NOT IN (5, 10)", {"r2", "r6"}),
        ("metrics.auc IN (0.7, 0.9)", {"r1", "r2", "r5"}),
        ("metrics.auc NOT IN (0.7, 0.9)", {"r3", "r6"}),
        ("params.model LIKE 'xgb'", {"r1"}),
        ("params.model ILIKE 'xgb'", {"r1", "r3"}),
        ("params.model LIKE 'a%'", {"r5", "r6"}),
        ("params.model LIKE 'a_b'", {"r5", "r6"}),  # '_' is any one character
        ("params.model LIKE 'a%b'", {"r5", "r6"}),
        ("params.model LIKE '%B'", {"r3"}),  # LIKE is case-sensitive, unlike SQLite's
        ("run_name LIKE 'xgb_5'", {"r1", "r4"}),
        ("run_name LIKE '100%'", {"r5"}),
        ("run_name ILIKE 'été'", {"r6"}),  # Unicode case folding
        ("run_name LIKE '%'", {"r1", "r2", "r4", "r5", "r6"}),  # r3 has no name
        ("run_name != 'xgb-5'", {"r2", "r4", "r5", "r6"}),
        ("tags.team = 'ds'", {"r1", "r4"}),
        ('tags.team = "it\'s"', {"r6"}),
        ("tags.team = 'it\\'s'", {"r6"}),
        ("tags.team ILIKE 'ML'", {"r2", "r5"}),
        ("tags.team != 'ds'", {"r2", "r5", "r6"}),
        ("tags.missing = 'x' or tags.missing != 'x'", set()),
        ("status = 'FINISHED'", {"r1", "r2", "r5"}),
        ("attributes.status IN ('FAILED', 'KILLED')", {"r3", "r6"}),
        ("run_id IN ('r1', 'r6', 'o1')", {"r1", "r6"}),
        ("start_time >= 30", {"r3", "r4", "r5"}),
        ("start_time = '40'", {"r4", "r5"}),
        ("start_time = 'forty'", set()),
        ("start_time IN ('40', 'forty')", {"r4", "r5"}),  # 'forty' can equal no number
        ("start_time NOT IN ('40', 'forty')", set()),  # ... nor differ from one
        ("start_time LIKE '4%'", {"r4", "r5"}),
        ("start_time LIKE '40.0'", {"r4", "r5"}),
        ("end_time < 20", {"r1", "r6"}),
        ("end_time IN (6, 50) or end_time NOT IN (1)", {"r1", "r2", "r5", "r6"}),
        ("metrics.auc > 0.8 and (params.depth = '5' or tags.team = 'ds')", {"r1"}),
        ("params.depth = '6' or params.depth = '5' and metrics.auc > 0.8", {"r1", "r2"}),
        ("(params.depth = '6' or params.depth = '5') and metrics.auc > 0.8", {"r1"}),
        ("((run_name = 'xgb_5')) or (status = 'KILLED' and (tags.team LIKE 'it%'))", {"r4", "r6"}),
        ("params.model = '\\'; DROP TABLE runs; --'", set()),  # bound, never SQL
        ("params.`no such key` = 'x'", set()),
    ],
)
def test_filters_match_the_reference_and_the_expected_runs(
    store: SQLiteStore, experiment: Experiment, filter_text: str, expected: set[str]
) -> None:
    reference = reference_search(list(store.iter_runs("search")), filter_text, None)
    assert set(reference) == expected
    assert sql_search(store, experiment, filter_text) == reference


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, ["r4", "r5", "r3", "r2", "r1", "r6"]),  # newest first, ties by run id
        (["metrics.auc DESC"], ["r1", "r3", "r5", "r2", "r6", "r4"]),  # r4 (no auc) last
        (["metrics.auc"], ["r6", "r5", "r2", "r3", "r1", "r4"]),  # still last ascending
        (["metrics.loss DESC"], ["r6", "r1", "r4", "r5", "r3", "r2"]),
        # Numbers first (5, 5, 6, ' 7 ', 10), then text ('deep').
        (["params.depth"], ["r4", "r1", "r2", "r6", "r3", "r5"]),
        (["params.depth DESC"], ["r5", "r3", "r6", "r2", "r4", "r1"]),
        (["params.model", "metrics.auc DESC"], ["r3", "r5", "r6", "r2", "r1", "r4"]),
        (["tags.team DESC"], ["r5", "r6", "r4", "r1", "r2", "r3"]),
        (["run_name"], ["r5", "r2", "r1", "r4", "r6", "r3"]),
        (["status DESC", "start_time"], ["r4", "r6", "r1", "r2", "r5", "r3"]),
        (["end_time DESC"], ["r5", "r2", "r1", "r6", "r4", "r3"]),
        (["run_id DESC"], ["r6", "r5", "r4", "r3", "r2", "r1"]),
    ],
)
@pytest.mark.parametrize("page_size", [1, 2, 4, 100])
def test_orders_page_through_in_the_reference_order(
    store: SQLiteStore,
    experiment: Experiment,
    order_by: list[str] | None,
    expected: list[str],
    page_size: int,
) -> None:
    assert reference_search(list(store.iter_runs("search")), None, order_by) == expected
    assert sql_search(store, experiment, None, order_by, page_size) == expected


def test_paging_through_many_ties_has_no_gaps_or_duplicates(store: SQLiteStore) -> None:
    experiment = store.create_experiment("ties")
    specs = [
        RunSpec(f"t{index:02}", index % 3, params={"p": ["1", "1.0", "01", "x"][index % 4]})
        for index in range(30)
    ]
    write_runs(store, experiment, specs)
    runs = list(store.iter_runs("ties"))
    for order_by in (["params.p"], ["params.p DESC", "start_time"], None):
        expected = reference_search(runs, "params.p != 'y'", order_by)
        assert len(expected) == 30
        for page_size in (1, 3, 7):
            ids = sql_search(store, experiment, "params.p != 'y'", order_by, page_size)
            assert ids == expected


def test_load_runs_builds_the_same_runs_as_get_run(
    store: SQLiteStore, experiment: Experiment
) -> None:
    store.log_dataset(
        "r1",
        Dataset(name="train", uri="file:///d", digest="ab", digest_algorithm="sha256", logged_at=1),
    )
    store.log_artifact(
        "r1", Artifact(name="model", uri="file:///m", sha256="cd", size=3, created_at=2)
    )
    page = search_page(store, experiment, "metrics.auc >= 0.7", ["metrics.auc DESC"], 10, None)
    with store.db.read() as conn:
        runs = sqlite_search.load_runs(conn, page.rows)
        assert sqlite_search.load_runs(conn, []) == []
    assert [run.run_id for run in runs] == ["r1", "r3", "r5", "r2"]
    assert runs == [store.get_run(run.run_id) for run in runs]
    assert runs[0].datasets["train"].digest == "ab"
    assert runs[0].artifacts["model"].size == 3


def test_the_goal_search_uses_the_indexes(store: SQLiteStore, experiment: Experiment) -> None:
    query, args = sqlite_search.compile_search(
        experiment_id=experiment.experiment_id,
        predicate=parse_filter("metrics.auc > 0.7 and params.depth = '5'"),
        order=parse_order_by(["metrics.auc DESC"]),
        limit=50,
        after=None,
    )
    with store.db.read() as conn:
        sqlite_search.register_functions(conn)
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query, args))
    assert "latest_metrics_by_key_value (key=? AND value>?)" in plan
    # Params are scanned (no index: see SEARCH_INDEXES); runs and metrics never are.
    assert "SCAN runs" not in plan
    assert "SCAN latest_metrics" not in plan


# -- page tokens -----------------------------------------------------------------------------


def two_pages(
    store: SQLiteStore, experiment: Experiment, order_by: list[str]
) -> sqlite_search.SearchPage:
    page = search_page(store, experiment, None, order_by, 2, None)
    assert page.next_token is not None
    return page


def test_a_token_from_another_search_is_refused(store: SQLiteStore, experiment: Experiment) -> None:
    token = two_pages(store, experiment, ["metrics.auc DESC"]).next_token
    with pytest.raises(InvalidInput, match="page token belongs to a different search"):
        search_page(store, experiment, None, ["metrics.auc"], 2, token)
    with pytest.raises(InvalidInput, match="page token belongs to a different search"):
        search_page(store, experiment, "status = 'FINISHED'", ["metrics.auc DESC"], 2, token)
    other = store.get_experiment("other")
    with pytest.raises(InvalidInput, match="page token belongs to a different search"):
        search_page(store, other, None, ["metrics.auc DESC"], 2, token)


def test_a_token_works_with_any_page_size(store: SQLiteStore, experiment: Experiment) -> None:
    token = two_pages(store, experiment, ["metrics.auc DESC"]).next_token
    rest = search_page(store, experiment, None, ["metrics.auc DESC"], 10, token)
    assert [row["run_id"] for row in rest.rows] == ["r5", "r2", "r6", "r4"]
    assert rest.next_token is None


def test_long_text_values_travel_in_chunks(store: SQLiteStore) -> None:
    experiment = store.create_experiment("long")
    long_values = ["é" * 6000, "é" * 5999 + "z", "x" * 6000]
    specs = [RunSpec(f"l{i}", 0, params={"p": value}) for i, value in enumerate(long_values)]
    write_runs(store, experiment, specs)
    page = search_page(store, experiment, None, ["params.p"], 1, None)
    assert page.next_token is not None
    assert len(page.next_token) > 6000  # more than one 2,048-character field
    # Code point order: 'x...' < 'é...z' < 'é...é'.
    assert sql_search(store, experiment, None, ["params.p"], 1) == ["l2", "l1", "l0"]
    assert reference_search(list(store.iter_runs("long")), None, ["params.p"]) == ["l2", "l1", "l0"]


def fingerprint(experiment: Experiment, order_by: list[str]) -> str:
    return sqlite_search.search_fingerprint(
        experiment_id=experiment.experiment_id, filter_text=None, order_by=order_by
    )


@pytest.mark.parametrize(
    ("order_by", "entries"),
    [
        (["metrics.auc"], ["0x1.0p+0", 1, "r1"]),  # too long
        (["metrics.auc"], ["0x1.0p+0"]),  # too short
        (["metrics.auc"], [0.5, 1, "r1", "r1"]),  # a float where hex text belongs
        (["metrics.auc"], ["half", 1, "r1", "r1"]),
        (["metrics.auc"], ["nan", 1, "r1", "r1"]),
        (["metrics.auc"], ["0x1p+99999", 1, "r1", "r1"]),  # overflows
        (["metrics.auc"], [None, "1", "r1", "r1"]),  # start_time as text
        (["metrics.auc"], [None, None, "r1", "r1"]),  # start_time is never missing
        (["metrics.auc"], [None, 2**70, "r1", "r1"]),  # beyond 64 bits
        (["metrics.auc"], [None, True, "r1", "r1"]),
        (["metrics.auc"], [None, 1, "r1", 5]),  # run id as a number
        (["metrics.auc"], [None, 1, "r1", "\ud800"]),  # a lone surrogate
        (["params.depth"], [7, 1, "r1", "r1"]),
        (["params.depth"], [["5"], 1, "r1", "r1"]),
        (["params.depth"], [{"a": 1}, 1, "r1", "r1"]),
    ],
)
def test_crafted_cursor_entries_are_invalid_input(
    store: SQLiteStore, experiment: Experiment, order_by: list[str], entries: list[object]
) -> None:
    import json

    payload = json.dumps(entries)
    token = encode_token({"q": fingerprint(experiment, order_by), "k": 1, "c0": payload})
    with pytest.raises(InvalidInput, match="invalid page token"):
        search_page(store, experiment, None, order_by, 2, token)


@pytest.mark.parametrize(
    "state",
    [
        {"k": 1, "c0": "[]"},  # no fingerprint
        {"q": "FP", "k": 0},
        {"q": "FP", "k": 10**9},
        {"q": "FP", "k": "1", "c0": "[]"},
        {"q": "FP", "k": 2, "c0": "[null,"},  # a missing chunk
        {"q": "FP", "k": 1, "c0": "[null,"},  # not JSON
        {"q": "FP", "k": 1, "c0": '{"a": 1}'},  # not a list
        {"q": "FP", "k": 1, "c0": ["a"]},
        {"q": "FP", "k": 1, "c0": "x" * 3000},  # longer than a field may be
    ],
)
def test_crafted_tokens_are_invalid_input(
    store: SQLiteStore, experiment: Experiment, state: dict[str, object]
) -> None:
    if state.get("q") == "FP":
        state = {**state, "q": fingerprint(experiment, ["metrics.auc"])}
    with pytest.raises(InvalidInput, match="invalid page token"):
        search_page(store, experiment, None, ["metrics.auc"], 2, encode_token(state))


def test_a_fingerprint_of_another_type_is_another_search(
    store: SQLiteStore, experiment: Experiment
) -> None:
    token = encode_token({"q": 5, "k": 1, "c0": "[]"})
    with pytest.raises(InvalidInput, match="different search"):
        search_page(store, experiment, None, None, 2, token)


@pytest.mark.parametrize("token", ["", "!!!", "e30", "bm90IGpzb24", "a" * 5])
def test_garbage_tokens_are_invalid_input(
    store: SQLiteStore, experiment: Experiment, token: str
) -> None:
    # An empty token is a bad token too, as on every backend (the API refuses it by length).
    with pytest.raises(InvalidInput, match="invalid page token"):
        search_page(store, experiment, None, None, 2, token)


@pytest.mark.parametrize("size", [0, -1, 1001, True])
def test_page_size_is_checked(store: SQLiteStore, experiment: Experiment, size: int) -> None:
    with pytest.raises(InvalidInput, match="max_results"):
        search_page(store, experiment, None, None, size, None)


def test_a_lone_surrogate_in_a_literal_is_invalid_input(
    store: SQLiteStore, experiment: Experiment
) -> None:
    with pytest.raises(InvalidInput, match="Unicode"):
        search_page(store, experiment, "params.depth = '\ud800'", None, 2, None)


def test_functions_work_on_a_connection_of_their_own(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "bare.db")
    sqlite_search.register_functions(conn)
    row = conn.execute(
        "SELECT search_number(' 1e1 '), search_number('x'), search_number(NULL), "
        "search_like('ABC', 'a_c', 1), search_like('ABC', 'a_c', 0), search_like(5, '5.0', 0), "
        "search_like(NULL, '%', 0), search_sort_key(NULL)"
    ).fetchone()
    assert row == (10.0, None, None, 1, 0, 1, None, b"")
    conn.close()


@given(st.lists(texts | st.floats(allow_nan=True).map(repr), min_size=2, max_size=8))
@settings(max_examples=200, derandomize=True, database=None)
def test_sort_key_orders_as_the_reference(values: list[str]) -> None:
    by_key = sorted(values, key=sqlite_search.sort_key)
    by_reference = sorted(values, key=_sortable)
    assert [_sortable(v) for v in by_key] == [_sortable(v) for v in by_reference]
    for left in values:
        for right in values:
            same = sqlite_search.sort_key(left) == sqlite_search.sort_key(right)
            assert same is (_sortable(left) == _sortable(right))  # -0.0 == 0.0 included


# -- random runs, filters and orders against the reference -----------------------------------


_RANDOM_DB: list[SQLiteStore] = []


def random_store() -> SQLiteStore:
    """One store for every example (a new file per example would dominate the test's time),
    emptied before each."""
    if not _RANDOM_DB:
        folder = tempfile.mkdtemp(prefix="search-random-")
        _RANDOM_DB.append(open_store(Path(folder) / "random.db"))
    store = _RANDOM_DB[0]
    with store.db.write() as conn:
        tables = ("params", "tags", "latest_metrics", "metric_points", "metric_blocks", "runs")
        for table in (*tables, "experiments"):
            conn.execute(f"DELETE FROM {table}")
    return store


@given(data=st.data(), page_size=st.integers(1, 5))
@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_random_searches_match_the_reference(data: st.DataObject, page_size: int) -> None:
    specs = data.draw(run_specs(), label="runs")
    filter_text = data.draw(filters(specs), label="filter")
    order_by = data.draw(orders(), label="order_by")
    assert filter_text is None or parse_filter(filter_text) is not None
    store = random_store()
    experiment = store.create_experiment("random")
    write_runs(store, experiment, specs)
    expected = reference_search(list(store.iter_runs("random")), filter_text, order_by)
    assert sql_search(store, experiment, filter_text, order_by, page_size) == expected


@pytest.fixture(autouse=True, scope="module")
def _close_random_store() -> Iterator[None]:
    yield
    for store in _RANDOM_DB:
        store.close()
        shutil.rmtree(store.db.path.parent, ignore_errors=True)
    _RANDOM_DB.clear()
