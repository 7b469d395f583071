"""Search in the store: filters, orders and keyset pages, the same on every backend.

The reference is ``tracking.search``: its predicate and ``sort_runs`` over every run. A page
token is a cursor (the last run's order values, or its index key), so runs logged between two
pages never shift a page, and a token from another search is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.contract.conftest import Backend
from tracking import ExperimentLogger
from tracking.entities import Metric, RunRecord
from tracking.errors import InvalidInput, NotFound
from tracking.search import parse_filter, parse_order_by, sort_runs
from tracking.stores.ports.metadata import MetadataStore


def _logger(backend: Backend) -> ExperimentLogger:
    return ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)


def _seed(store: MetadataStore, count: int = 14) -> list[RunRecord]:
    experiment = store.get_or_create_experiment("search")
    for index in range(count):
        run_id = f"r{index:02d}"
        store.create_run(
            experiment=experiment,
            run_id=run_id,
            run_name=f"xgb-{index % 4}",
            tags={"team": "ds" if index % 3 else "ml"},
            parent_run_id=None,
            # Ties on start time, so the run-id tiebreak is exercised.
            start_time=1_000 + index // 2,
        )
        params = {"max_depth": str(3 + index % 5)}
        if index % 4:
            params["model"] = "xgb" if index % 2 else "lgbm"
        metrics = [Metric(key="loss", value=1.0 / (index + 1), step=0, timestamp=index)]
        if index % 5 != 4:  # some runs have no auc: they sort last either way
            metrics.append(
                Metric(key="auc", value=round(0.5 + (index % 7) / 20, 3), step=3, timestamp=index)
            )
        store.log_batch(run_id, params=params, metrics=metrics)
    return list(store.iter_runs("search"))


def _reference(runs: list[RunRecord], filter: str | None, order_by: Sequence[str]) -> list[str]:
    predicate = parse_filter(filter)
    matched = [run for run in runs if predicate is None or predicate(run)]
    return [run.run_id for run in sort_runs(matched, parse_order_by(order_by))]


def _all_pages(
    logger: ExperimentLogger, filter: str | None, order_by: Sequence[str], size: int
) -> list[str]:
    found: list[str] = []
    token = None
    pages = 0
    while True:
        page = logger.search_runs(
            "search", filter=filter, order_by=list(order_by), max_results=size, page_token=token
        )
        pages += 1
        found.extend(run.run_id for run in page.items)
        assert len(page.items) <= size
        if page.next_token is None:
            # No empty last page: a token is given only when more runs follow.
            assert page.items or pages == 1
            return found
        assert len(page.items) == size
        token = page.next_token


CASES = [
    (None, []),
    ("metrics.auc > 0.7 and params.max_depth = '5'", ["metrics.auc DESC"]),
    ("metrics.auc > 0.6", ["metrics.auc DESC"]),
    ("params.max_depth >= 5 or tags.team = 'ml'", []),
    (None, ["metrics.auc ASC"]),
    (None, ["params.model DESC", "run_name"]),
    ("run_name LIKE 'xgb-%' and tags.team != 'ml'", ["start_time ASC"]),
    ("params.model = 'xgb' or params.model = 'lgbm'", ["params.max_depth DESC"]),
    ("metrics.loss < 0.2", ["tags.team", "metrics.auc DESC"]),
    ("status = 'RUNNING' and metrics.auc <= 0.55", []),
]


@pytest.mark.parametrize(("filter", "order_by"), CASES)
@pytest.mark.parametrize("size", [1, 4])
def test_pages_follow_the_reference(
    backend: Backend, filter: str | None, order_by: list[str], size: int
) -> None:
    runs = _seed(backend.metadata)
    assert _all_pages(_logger(backend), filter, order_by, size) == _reference(
        runs, filter, order_by
    )


def test_search_returns_complete_runs(backend: Backend) -> None:
    runs = {run.run_id: run for run in _seed(backend.metadata, 6)}
    page = _logger(backend).search_runs(
        "search", filter="metrics.auc > 0", order_by=["metrics.auc"]
    )
    assert page.items
    for run in page.items:
        assert run == runs[run.run_id] == backend.metadata.get_run(run.run_id)


def test_a_run_logged_between_pages_does_not_shift_them(backend: Backend) -> None:
    _seed(backend.metadata)
    logger = _logger(backend)
    first = logger.search_runs("search", order_by=["metrics.auc DESC"], max_results=4)
    store = backend.metadata
    experiment = store.get_experiment("search")
    store.create_run(
        experiment=experiment, run_id="late", run_name=None, tags={}, parent_run_id=None,
        start_time=9_999,
    )  # fmt: skip
    store.log_batch("late", metrics=[Metric(key="auc", value=0.99, step=0, timestamp=0)])
    second = logger.search_runs(
        "search", order_by=["metrics.auc DESC"], max_results=4, page_token=first.next_token
    )
    seen = [run.run_id for run in first.items]
    assert not {run.run_id for run in second.items} & set(seen)
    assert "late" not in {run.run_id for run in second.items}  # it sorts before the cursor


@pytest.mark.parametrize(
    "token",
    ["", "x", "e30", "eyJxIjoiYWJjIn0", "eyJvcmRlciI6MSwicnVuIjoxfQ", "!!!!", "a" * 3000],
)
def test_crafted_tokens_are_invalid_input(backend: Backend, token: str) -> None:
    _seed(backend.metadata, 3)
    logger = _logger(backend)
    for order_by in ([], ["metrics.auc DESC"]):
        with pytest.raises(InvalidInput):
            logger.search_runs("search", order_by=order_by, page_token=token)


def test_a_token_of_another_search_is_refused(backend: Backend) -> None:
    _seed(backend.metadata, 6)
    logger = _logger(backend)
    for order_by in ([], ["metrics.auc DESC"]):
        token = logger.search_runs("search", order_by=order_by, max_results=2).next_token
        assert token is not None
        with pytest.raises(InvalidInput, match="different search"):
            logger.search_runs(
                "search", filter="metrics.auc > 0", order_by=order_by, page_token=token
            )
    listed = backend.metadata.list_runs("search", 2).next_token
    assert listed is not None
    with pytest.raises(InvalidInput, match="different search"):
        logger.search_runs("search", order_by=["metrics.auc DESC"], page_token=listed)


@pytest.mark.parametrize(
    ("filter", "order_by", "message"),
    [
        ("metrics.auc >", [], "end of expression"),
        ("metrics.auc > 'x'", [], "compares with a number"),
        ("nope = 1", [], "unknown field"),
        ("(metrics.auc > 1", [], "expected"),
        (None, ["metrics.auc SIDEWAYS"], "ASC|DESC"),
        (None, ["colour"], "unknown field"),
    ],
)
def test_bad_searches_name_the_problem(
    backend: Backend, filter: str | None, order_by: list[str], message: str
) -> None:
    _seed(backend.metadata, 2)
    with pytest.raises(InvalidInput, match=message):
        _logger(backend).search_runs("search", filter=filter, order_by=order_by)


def test_unknown_experiment_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        _logger(backend).search_runs("missing", filter="metrics.auc > 0", order_by=["run_name"])


def test_a_run_past_the_summary_budget_is_searched_like_the_others(backend: Backend) -> None:
    """150 KB of tags: past DynamoDB's summary budget, so that run is read from its partition."""
    runs = _seed(backend.metadata, 4)
    big = {f"t{index:03d}": "v" * 1_500 for index in range(100)}
    backend.metadata.log_batch("r01", tags=big)
    backend.metadata.log_batch("r01", metrics=[Metric(key="fresh", value=2.0, step=1, timestamp=1)])
    run = backend.metadata.get_run("r01")
    assert run.tags.items() >= big.items()
    assert run.metrics["fresh"].value == 2.0
    runs = list(backend.metadata.iter_runs("search"))
    assert run in runs
    logger = _logger(backend)
    assert _all_pages(logger, "tags.t000 LIKE 'v%'", ["metrics.auc DESC"], 2) == ["r01"]
    assert _all_pages(logger, "metrics.fresh > 1", [], 1) == ["r01"]
