"""/ui (experiments) and /ui/experiments/{name} (the runs table)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from functions.api.auth import requires
from functions.api.deps import LoggerDep
from functions.api.schemas import NamePath
from functions.api.ui import PREFIX
from functions.api.ui.core import UiRoute, render
from tracking import ExperimentLogger, InvalidInput, NotFound
from tracking.entities import RunRecord
from tracking.validation import NAME_PATTERN

router = APIRouter(route_class=UiRoute, prefix=PREFIX, include_in_schema=False)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_COLUMNS = 40
#: Counting pages through search_runs: stop there and show "100000+".
MAX_COUNTED = 100_000
SUMMARY_TTL_SECONDS = 30.0
KINDS = ("metrics", "params", "tags")
#: Keys offered as checkboxes in the column picker, per kind; any other key can be typed.
PICKER_CHECKBOXES = 200
Token = Annotated[str | None, Query(max_length=4000)]


# -- experiments ---------------------------------------------------------------------------------


@dataclass
class _Summary:
    runs: int
    capped: bool
    last_activity: int | None
    at: float


@dataclass
class _Summaries:
    """Run counts and last activity per experiment, cached a few seconds (no count in the store)."""

    entries: dict[str, _Summary] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, logger: ExperimentLogger, name: str) -> _Summary:
        now = time.monotonic()
        with self.lock:
            found = self.entries.get(name)
        if found is not None and now - found.at < SUMMARY_TTL_SECONDS:
            return found
        count, last, token, capped = 0, None, None, False
        while True:
            page = logger.search_runs(name, max_results=1000, page_token=token)
            count += len(page.items)
            for run in page.items:
                moment = max(run.start_time, run.end_time or 0)
                last = moment if last is None else max(last, moment)
            token = page.next_token
            if token is None:
                break
            if count >= MAX_COUNTED:
                capped = True
                break
        summary = _Summary(count, capped, last, now)
        with self.lock:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[name] = summary
        return summary


SUMMARIES = _Summaries()


@router.get("", openapi_extra=requires("read"))
@router.get("/", openapi_extra=requires("read"))
def experiments(request: Request, logger: LoggerDep, page_token: Token = None) -> Response:
    """Experiments by name, with run counts and last activity (loaded by htmx after the page)."""
    page = logger.list_experiments(PAGE_SIZE, page_token)
    names = ",".join(experiment.name for experiment in page.items)
    return render(request, "experiments.html", page=page, names=names, page_token=page_token)


@router.get("/experiment-summaries", openapi_extra=requires("read"))
def experiment_summaries(
    request: Request, logger: LoggerDep, names: Annotated[str, Query(max_length=8000)] = ""
) -> Response:
    """htmx fragment: each experiment's run count and last activity (out-of-band swaps)."""
    wanted = [name for name in names.split(",") if NAME_PATTERN.fullmatch(name)][:PAGE_SIZE]
    summaries = []
    for index, name in enumerate(wanted):
        try:
            summaries.append((index, SUMMARIES.get(logger, name)))
        except NotFound:  # deleted since the page was rendered: its cells keep their "…"
            continue
    return render(request, "_experiment_summaries.html", summaries=summaries)


# -- the runs table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    kind: str  # metrics | params | tags
    key: str

    @property
    def field(self) -> str:
        return f"{self.kind}.{self.key}"

    def value(self, run: RunRecord) -> str:
        if self.kind == "metrics":
            metric = run.metrics.get(self.key)
            return "" if metric is None else f"{metric.value:.6g}"
        source = run.params if self.kind == "params" else run.tags
        return source.get(self.key, "")


def parse_columns(values: list[str]) -> list[Column]:
    """``metrics.auc,params.depth`` (repeatable) as columns; bad ones are named in the error."""
    columns: list[Column] = []
    for text in values:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            kind, _, key = part.partition(".")
            if kind not in KINDS or not NAME_PATTERN.fullmatch(key) or len(key) > 128:
                raise InvalidInput(
                    f"column {part[:80]!r}: use metrics.<key>, params.<key> or tags.<key>"
                )
            column = Column(kind, key)
            if column not in columns:
                columns.append(column)
    if len(columns) > MAX_COLUMNS:
        raise InvalidInput(f"columns: at most {MAX_COLUMNS} can be shown; got {len(columns)}")
    return columns


def default_columns(runs: list[RunRecord]) -> list[Column]:
    """A few columns when none are chosen: never every key (thousands of metric keys happen)."""
    metrics = sorted({key for run in runs for key in run.metrics})[:4]
    params = sorted({key for run in runs for key in run.params})[:3]
    return [Column("metrics", key) for key in metrics] + [Column("params", key) for key in params]


@dataclass(frozen=True)
class Row:
    run: RunRecord
    depth: int  # 1: shown under its parent
    orphan: bool  # a child whose parent is not on this page


def group(runs: list[RunRecord]) -> list[Row]:
    """Children right after their parent (when both are on the page), in the page's order."""
    on_page = {run.run_id for run in runs}
    children: dict[str, list[RunRecord]] = {}
    for run in runs:
        if run.parent_run_id in on_page:
            children.setdefault(str(run.parent_run_id), []).append(run)
    rows: list[Row] = []

    def add(run: RunRecord, depth: int) -> None:
        rows.append(Row(run, depth, run.parent_run_id is not None and depth == 0))
        for child in children.get(run.run_id, []):
            add(child, min(depth + 1, 3))

    for run in runs:
        if run.parent_run_id not in on_page:
            add(run, 0)
    return rows


def _order(order_by: str | None) -> tuple[str, str] | None:
    """(field, ASC|DESC) of a one-key order, for the header arrows."""
    if not order_by:
        return None
    parts = order_by.split()
    direction = parts[1].upper() if len(parts) > 1 else "ASC"
    return parts[0], direction


@router.get("/experiments/{name}", openapi_extra=requires("read"))
def runs_table(
    request: Request,
    name: NamePath,
    logger: LoggerDep,
    filter: Annotated[str | None, Query(max_length=4000)] = None,
    order_by: Annotated[str | None, Query(max_length=300)] = None,
    columns: Annotated[list[str] | None, Query(max_length=MAX_COLUMNS)] = None,
    add: Annotated[str | None, Query(max_length=200)] = None,
    max_results: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = PAGE_SIZE,
    page_token: Token = None,
) -> Response:
    """The runs of an experiment: filter, order, chosen columns, cursor pages, sweeps grouped."""
    experiment = logger.get_experiment(name)
    error = None
    chosen: list[Column] | None = None
    try:
        chosen = parse_columns([*(columns or []), *([add] if add else [])])
    except InvalidInput as invalid:
        error = invalid.message
    runs: list[RunRecord] = []
    next_token = None
    if error is None:
        try:
            page = logger.search_runs(
                name,
                filter=filter or None,
                order_by=[order_by] if order_by else None,
                max_results=max_results,
                page_token=page_token,
            )
            runs, next_token = page.items, page.next_token
        except InvalidInput as invalid:
            # Shown under the search box, naming the problem (the SDK's message).
            error = invalid.message
    shown = chosen if chosen else default_columns(runs)
    available = {
        kind: sorted({key for run in runs for key in getattr(run, kind)}) for kind in KINDS
    }
    state = {"filter": filter or "", "order_by": order_by or "",
             "columns": ",".join(column.field for column in shown) if chosen else "",
             "max_results": "" if max_results == PAGE_SIZE else str(max_results)}  # fmt: skip

    def link(**changes: str) -> str:
        """This table's URL with some query fields changed (empty ones left out)."""
        values = {**state, **changes}
        return "?" + urlencode({key: value for key, value in values.items() if value})

    return render(
        request,
        "runs.html",
        link=link,
        experiment=experiment,
        rows=group(runs),
        columns=shown,
        chosen_columns=state["columns"],
        available=available,
        picker_limit=PICKER_CHECKBOXES,
        filter=filter or "",
        order_by=order_by or "",
        order=_order(order_by),
        max_results=max_results,
        page_token=page_token,
        next_token=next_token,
        error=error,
    )
