"""The filter language and ordering, on in-memory runs."""

from __future__ import annotations

import pytest

from tracking.entities import Metric, RunRecord, RunStatus
from tracking.errors import InvalidInput
from tracking.search import parse_filter, parse_order_by, sort_runs


def run(
    run_id: str,
    *,
    auc: float | None = None,
    depth: str | None = None,
    team: str | None = None,
    status: RunStatus = RunStatus.FINISHED,
    start: int = 0,
    name: str | None = None,
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        experiment_id="e",
        experiment_name="exp",
        run_name=name,
        status=status,
        start_time=start,
        params={} if depth is None else {"max_depth": depth},
        tags={} if team is None else {"team": team},
        metrics={} if auc is None else {"auc": Metric(key="auc", value=auc, step=0, timestamp=0)},
    )


RUNS = [
    run("a", auc=0.9, depth="5", team="ds", start=1, name="xgb-depth5"),
    run("b", auc=0.7, depth="6", team="ml", start=2, name="xgb-depth6"),
    run("c", auc=0.85, depth="10", start=3, status=RunStatus.FAILED),
    run("d", depth="5", start=4),
]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("metrics.auc > 0.8", {"a", "c"}),
        ("metrics.auc >= 0.85 AND params.max_depth = '10'", {"c"}),
        ("metrics.auc > 0.8 and (params.max_depth = '5' or tags.team = 'ds')", {"a"}),
        ("params.max_depth = '5' or tags.team = 'ml'", {"a", "b", "d"}),
        ("params.max_depth > 5", {"b", "c"}),  # numbers compare as numbers: '10' > 5
        ("params.max_depth != '5'", {"b", "c"}),  # a run without the key never matches
        ("status = 'FAILED'", {"c"}),
        ("attributes.status != 'FAILED'", {"a", "b", "d"}),
        ("run_name LIKE 'xgb-%'", {"a", "b"}),
        ("run_name ILIKE 'XGB-DEPTH_'", {"a", "b"}),
        ("start_time >= 3", {"c", "d"}),
        ("metrics.`auc` < 0.8", {"b"}),
        ('tags.team = "ds"', {"a"}),
        ("((metrics.auc > 0.1))", {"a", "b", "c"}),
        ("metrics.auc = 0.9 or metrics.auc = 0.7 and params.max_depth = '6'", {"a", "b"}),
    ],
)
def test_filters(expression: str, expected: set[str]) -> None:
    predicate = parse_filter(expression)
    assert predicate is not None
    assert {r.run_id for r in RUNS if predicate(r)} == expected


def test_and_binds_tighter_than_or() -> None:
    predicate = parse_filter(
        "params.max_depth = '6' or params.max_depth = '5' and metrics.auc > 0.8"
    )
    assert predicate is not None
    assert {r.run_id for r in RUNS if predicate(r)} == {"a", "b"}


@pytest.mark.parametrize(
    "expression",
    [
        "metrics.auc",
        "metrics.auc >",
        "metrics.auc > 'high'",
        "(metrics.auc > 1",
        "metrics.auc > 1)",
        "foo = 1",
        "bar.x = 1",
        "metrics.auc ~ 1",
        "params.a = 'x' and",
        "params.a LIKE 5",
        "attributes.color = 'x'",
        "params.a = 'x' params.b = 'y'",
        "x" * 5000,
        "params.a = 'x' ; drop",
    ],
)
def test_malformed_filters_are_invalid_input(expression: str) -> None:
    with pytest.raises(InvalidInput, match="filter"):
        parse_filter(expression)


def test_empty_filter_matches_everything() -> None:
    assert parse_filter(None) is None
    assert parse_filter("   ") is None


def test_order_by_missing_values_last_both_directions() -> None:
    descending = sort_runs(RUNS, parse_order_by(["metrics.auc DESC"]))
    assert [r.run_id for r in descending] == ["a", "c", "b", "d"]
    ascending = sort_runs(RUNS, parse_order_by(["metrics.auc"]))
    assert [r.run_id for r in ascending] == ["b", "c", "a", "d"]


def test_order_by_params_numeric_then_ties_by_newest() -> None:
    ordered = sort_runs(RUNS, parse_order_by(["params.max_depth ASC"]))
    assert [r.run_id for r in ordered] == ["d", "a", "b", "c"]


def test_default_order_is_newest_first() -> None:
    assert [r.run_id for r in sort_runs(RUNS, parse_order_by(None))] == ["d", "c", "b", "a"]


@pytest.mark.parametrize("clause", ["metrics.auc SIDEWAYS", "nope", "metrics.auc DESC extra", ""])
def test_bad_order_by(clause: str) -> None:
    with pytest.raises(InvalidInput):
        parse_order_by([clause])
