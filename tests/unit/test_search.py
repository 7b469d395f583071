"""The filter language and ordering, on in-memory runs."""

from __future__ import annotations

import pytest

from tracking.entities import Metric, RunRecord, RunStatus
from tracking.errors import InvalidInput
from tracking.search import Comparison, like_match, parse_filter, parse_order_by, sort_runs


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
        ("params.max_depth IN ('5', '6')", {"a", "b", "d"}),
        ("params.max_depth in ('10')", {"c"}),
        ("params.max_depth NOT IN ('5', '6')", {"c"}),  # a run without the key never matches
        ("params.max_depth not in ('7')", {"a", "b", "c", "d"}),
        ("params.max_depth IN (5, 10)", {"a", "c", "d"}),  # numbers compare as numbers
        ("params.max_depth IN (5.0)", {"a", "d"}),
        ("metrics.auc IN (0.9, 0.7)", {"a", "b"}),
        ("metrics.auc NOT IN (0.9, 0.7)", {"c"}),
        ("status IN ('FAILED', 'KILLED') or tags.team IN ('ml')", {"b", "c"}),
        ("(params.max_depth IN ('5') and metrics.auc > 0.1) or run_id IN ('c')", {"a", "c"}),
        ("start_time IN (1, 3)", {"a", "c"}),
        ("start_time = '3'", {"c"}),  # a text literal that is a number, against a number
        ("start_time LIKE '3.0'", {"c"}),  # a number matches LIKE as Python prints it
        ("run_name IN ('xgb-depth5')", {"a"}),
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
        "params.a IN",
        "params.a NOT 'x'",
        "params.a IN ('x',)",
        "params.a IN ('x', , 'y')",
        "params.a NOT IN",
        "params.a IN (params.b)",
    ],
)
def test_malformed_filters_are_invalid_input(expression: str) -> None:
    with pytest.raises(InvalidInput, match="filter"):
        parse_filter(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("params.a IN ()", r"empty IN list at position 13"),
        ("params.a NOT IN ()", r"empty NOT IN list"),
        ("params.a IN ('x', 1)", r"IN list at position 9 mixes numbers and quoted texts"),
        ("params.a IN 'x'", r"expected '\(' after IN at position 12"),
        ("params.a NOT IN 5", r"expected '\(' after NOT IN"),
        ("params.a IN ('x'", r"unexpected end of expression"),
        ("params.a IN ('x' 'y')", r"expected ',' or '\)' in the IN list at position 17"),
        ("params.a IN ('x') )", r"unexpected '\)'"),
        ("metrics.auc IN ('high')", r"metrics.auc compares with numbers"),
        ("params.a NOT LIKE 'x'", r"expected IN after NOT at position 9"),
    ],
)
def test_in_list_errors_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_filter(expression)


def test_in_list_is_a_comparison_with_a_tuple_literal() -> None:
    predicate = parse_filter("params.model IN ('xgb', 'lgbm')")
    assert isinstance(predicate, Comparison)
    assert (predicate.op, predicate.literal) == ("in", ("xgb", "lgbm"))
    numbers = parse_filter("metrics.auc not in (0.5, 7)")
    assert isinstance(numbers, Comparison)
    assert (numbers.op, numbers.literal) == ("not in", (0.5, 7.0))


TEXT_RUNS = [
    run("n1", depth="deep", start=1),
    run("n2", depth="nan", start=2),
    run("n3", depth=" 7 ", start=3),
    run("n4", depth="1e1", start=4),
    run("n5", depth="inf", start=5),
]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # A number literal against a value that is not a number: no match, whatever the op
        # (this used to compare 'deep' with '5.0' as text).
        ("params.max_depth > 5", {"n3", "n4", "n5"}),
        ("params.max_depth != 5", {"n3", "n4", "n5"}),
        ("params.max_depth NOT IN (5)", {"n3", "n4", "n5"}),
        ("params.max_depth = 10", {"n4"}),
        ("params.max_depth IN (7, 10)", {"n3", "n4"}),
        # NaN is not a number: it never matches a numeric comparison, != included.
        ("params.max_depth < 5 or params.max_depth != 7", {"n4", "n5"}),
        # Text literals compare as text.
        ("params.max_depth > '5'", {"n1", "n2", "n5"}),  # 'inf' > '5' as text
        ("params.max_depth = 'nan'", {"n2"}),
        # A text literal against a number field must parse as a number.
        ("start_time = 'abc' or start_time < 'x'", set()),
    ],
)
def test_numbers_against_text_values(expression: str, expected: set[str]) -> None:
    predicate = parse_filter(expression)
    assert predicate is not None
    assert {r.run_id for r in TEXT_RUNS if predicate(r)} == expected


def test_nan_and_text_sort_after_numbers() -> None:
    ordered = sort_runs(TEXT_RUNS, parse_order_by(["params.max_depth"]))
    # 7 < 10 < inf, then the texts by code point: 'deep' < 'nan'.
    assert [r.run_id for r in ordered] == ["n3", "n4", "n5", "n1", "n2"]
    descending = sort_runs(TEXT_RUNS, parse_order_by(["params.max_depth DESC"]))
    assert [r.run_id for r in descending] == ["n2", "n1", "n5", "n4", "n3"]


@pytest.mark.parametrize(
    ("pattern", "ignore_case", "text", "expected"),
    [
        ("a%", False, "abc", True),
        ("a%", False, "Abc", False),
        ("a%", True, "Abc", True),
        ("a_c", False, "abc", True),
        ("a_c", False, "ac", False),
        ("a_c", False, "a\nc", True),
        ("%", False, "", True),
        ("_", False, "", False),
        ("100%", False, "100 percent", True),
        ("a.c", False, "abc", False),  # regex characters are literal
        ("ÉTÉ", True, "été", True),  # Unicode case folding
        ("x[y]", False, "x[y]", True),
    ],
)
def test_like_match(pattern: str, ignore_case: bool, text: str, expected: bool) -> None:
    assert like_match(text.replace("\\n", "\n"), pattern, ignore_case) is expected


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


def test_deep_nesting_is_refused_not_a_crash() -> None:
    parse_filter("(" * 50 + "metrics.auc > 1" + ")" * 50)
    with pytest.raises(InvalidInput, match="nest deeper than 50"):
        parse_filter("(" * 400 + "metrics.auc > 1" + ")" * 400)
