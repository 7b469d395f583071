"""Random runs, filters and orders for checking a store's search against the reference.

Backend-neutral: ``write_runs`` uses only the ``MetadataStore`` port, ``reference_search`` only
``tracking.search``, so a DynamoDB test can draw the same examples and compare its pages with
``reference_search`` of the same runs read back from the store.

Values are drawn from small pools so that ties, numbers written as text (``'01'``, ``' 2 '``,
``'1e1'``, ``'inf'``, ``'nan'``), LIKE wildcards, quotes, backslashes and non-ASCII text are
common rather than lucky.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from tracking.entities import Experiment, Metric, RunRecord, RunStatus
from tracking.search import parse_filter, parse_order_by, sort_runs
from tracking.stores.ports.metadata import MetadataStore

METRIC_KEYS = ("m1", "m2")
PARAM_KEYS = ("p1", "p2")
TAG_KEYS = ("t1", "t2")
TEXTS = (
    "1", "01", "1.0", " 2 ", "2", "10", "1e1", "-0", "0", "-1", "-2.5", "inf", "-inf", "nan",
    "1_0", "",
    "abc", "ABC", "abd", "a%b", "a_b", "%", "_", "it's", 'say "hi"', "back\\slash", "é", "É",
    "straße", "日本", "x\ny",
)  # fmt: skip
METRIC_VALUES = (0.0, -0.0, 0.5, 1.0, -1.5, 2.0, 10.0, 1e300, 0.1 + 0.2)
RUN_IDS = ("r1", "r2", "R3", "1", "1.0", "01", "2", "a_b", "é", "z")

texts = st.one_of(
    st.sampled_from(TEXTS), st.sampled_from(TEXTS), st.text(alphabet="aAb1%_' é\\", max_size=4)
)
# Mostly the pool (ties across runs and with literals), sometimes any finite float.
metric_values = st.one_of(
    st.sampled_from(METRIC_VALUES),
    st.sampled_from(METRIC_VALUES),
    st.floats(allow_nan=False, allow_infinity=False),
)


@dataclass(frozen=True)
class RunSpec:
    """What to write for one run."""

    run_id: str
    start_time: int
    run_name: str | None = None
    status: RunStatus = RunStatus.RUNNING
    end_time: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@st.composite
def run_specs(draw: st.DrawFn, max_runs: int = 12) -> list[RunSpec]:
    """Runs with distinct ids, few start times (ties) and random subsets of the key pools."""
    ids = draw(st.lists(st.sampled_from(RUN_IDS), unique=True, min_size=1, max_size=max_runs))
    return [
        RunSpec(
            run_id=run_id,
            start_time=draw(st.integers(0, 4)),
            run_name=draw(st.none() | texts.filter(bool)),
            status=draw(st.sampled_from(list(RunStatus))),
            end_time=draw(st.none() | st.integers(0, 6)),
            params=draw(st.fixed_dictionaries({}, optional=dict.fromkeys(PARAM_KEYS, texts))),
            tags=draw(st.fixed_dictionaries({}, optional=dict.fromkeys(TAG_KEYS, texts))),
            metrics=draw(
                st.fixed_dictionaries({}, optional=dict.fromkeys(METRIC_KEYS, metric_values))
            ),
        )
        for run_id in ids
    ]


def write_runs(store: MetadataStore, experiment: Experiment, specs: Sequence[RunSpec]) -> None:
    """Write ``specs`` through the store's own write path."""
    for spec in specs:
        store.create_run(
            experiment=experiment,
            run_id=spec.run_id,
            run_name=spec.run_name,
            tags=spec.tags,
            parent_run_id=None,
            start_time=spec.start_time,
        )
        store.log_batch(
            spec.run_id,
            params=spec.params,
            metrics=[
                Metric(key=key, value=value, step=0, timestamp=0)
                for key, value in spec.metrics.items()
            ],
        )
        if spec.status is not RunStatus.RUNNING or spec.end_time is not None:
            store.set_run_status(spec.run_id, spec.status, spec.end_time)


def quote(text: str) -> str:
    """``text`` as a filter string literal (the parser unescapes ``\\x`` to ``x``)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def number(value: float) -> str:
    """A finite float as a filter number literal that parses back to the same float."""
    text = repr(value)
    return text if "." in text or "e" in text else text + ".0"


_FIELDS = (
    *(("metrics", key) for key in METRIC_KEYS),
    *(("params", key) for key in PARAM_KEYS),
    *(("tags", key) for key in TAG_KEYS),
    *(("attributes", key) for key in ("status", "run_name", "run_id", "start_time", "end_time")),
)
_OPS = ("=", "==", "!=", "<>", ">", ">=", "<", "<=")
statuses = st.sampled_from([status.value for status in RunStatus])


@st.composite
def comparisons(draw: st.DrawFn, seen: Sequence[RunSpec] = ()) -> str:
    """One comparison; literals often come from the runs ``seen``, so that some runs match."""
    kind, key = draw(st.sampled_from(_FIELDS))
    name = f"{kind}.{key}" if kind != "attributes" or draw(st.booleans()) else key
    seen_texts = sorted({v for spec in seen for v in (*spec.params.values(), *spec.tags.values())})
    seen_numbers = sorted({v for spec in seen for v in spec.metrics.values()})
    text_pool = st.sampled_from(seen_texts) | texts if seen_texts else texts
    number_pool = st.sampled_from(seen_numbers) | metric_values if seen_numbers else metric_values
    numbers = number_pool.map(number) | st.integers(-2, 6).map(str)
    strings = (statuses if key == "status" else text_pool).map(quote)
    literals = numbers if kind == "metrics" else draw(st.sampled_from([numbers, strings]))
    shape = draw(st.sampled_from(["op", "op", "in", "not in", "like", "like"]))
    if shape == "like" and kind != "metrics":
        op = draw(st.sampled_from(["LIKE", "ILIKE", "like", "ilike"]))
        pattern = draw(text_pool)
        if draw(st.booleans()):  # put a wildcard into a pattern that would match exactly
            at = draw(st.integers(0, len(pattern)))
            pattern = pattern[:at] + draw(st.sampled_from(["%", "_"])) + pattern[at + 1 :]
        if draw(st.booleans()):  # so that LIKE and ILIKE differ
            pattern = pattern.swapcase()
        return f"{name} {op} {quote(pattern)}"
    if shape in {"in", "not in"}:
        values = draw(st.lists(literals, min_size=1, max_size=3))
        return f"{name} {shape.upper()} ({', '.join(values)})"
    return f"{name} {draw(st.sampled_from(_OPS))} {draw(literals)}"


def _combine(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(parts, st.sampled_from([" and ", " OR ", " AND ", " or "]), parts).map(
            lambda t: t[0] + t[1] + t[2]
        ),
        parts.map(lambda text: f"({text})"),
    )


def filters(seen: Sequence[RunSpec] = ()) -> st.SearchStrategy[str | None]:
    """Filter texts of up to five comparisons (literals often from ``seen``), ``None`` (match
    everything) now and then."""
    trees = st.recursive(comparisons(seen), _combine, max_leaves=5)
    return st.integers(0, 7).flatmap(lambda n: trees if n else st.none())


@st.composite
def orders(draw: st.DrawFn) -> list[str]:
    clauses = []
    for _ in range(draw(st.integers(0, 2))):
        kind, key = draw(st.sampled_from(_FIELDS))
        name = f"{kind}.{key}" if kind != "attributes" else key
        direction = draw(st.sampled_from(["", " ASC", " DESC", " desc"]))
        clauses.append(name + direction)
    return clauses


def reference_search(
    runs: Sequence[RunRecord], filter_text: str | None, order_by: Sequence[str] | None
) -> list[str]:
    """Run ids matching ``filter_text`` in ``order_by`` order, by the pure-Python reference.

    ``runs`` may come in any order: they are first put in ``list_runs`` order (newest first,
    then run id), the order ``ExperimentLogger.search_runs`` has always sorted from, which
    decides between runs that tie on every key.
    """
    predicate = parse_filter(filter_text)
    listed = sorted(runs, key=lambda run: (-run.start_time, run.run_id))
    matching = [run for run in listed if predicate is None or predicate(run)]
    return [run.run_id for run in sort_runs(matching, parse_order_by(order_by))]
