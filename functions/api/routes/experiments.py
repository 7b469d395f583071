"""Experiments, runs and metric histories (read scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from functions.api.auth import AuthRoute, requires
from functions.api.deps import LoggerDep
from functions.api.schemas import (
    DEFAULT_MAX_POINTS,
    Decimal,
    MaxPoints,
    MaxResults,
    NamePath,
    PageToken,
    RunIdPath,
)
from functions.api.views import RunView
from tracking import Experiment, InvalidInput, Metric, Page

router = APIRouter(route_class=AuthRoute, tags=["experiments"])


@router.get("/experiments", response_model=Page[Experiment], openapi_extra=requires("read"))
def list_experiments(
    logger: LoggerDep, max_results: MaxResults = 100, page_token: PageToken = None
) -> Page[Experiment]:
    """Experiments by name, one page at a time."""
    return logger.list_experiments(max_results, page_token)


@router.get(
    "/experiments/{name}/runs", response_model=Page[RunView], openapi_extra=requires("read")
)
def search_runs(
    name: NamePath,
    logger: LoggerDep,
    filter: Annotated[  # the SDK's parameter name
        str | None,
        Query(max_length=4000, description="e.g. metrics.auc > 0.8 and params.max_depth = '5'"),
    ] = None,
    order_by: Annotated[
        list[str] | None, Query(max_length=10, description="e.g. metrics.auc DESC (repeatable)")
    ] = None,
    max_results: MaxResults = 100,
    page_token: PageToken = None,
) -> Page[RunView]:
    """Runs of an experiment, filtered and ordered as in the SDK's search_runs."""
    page = logger.search_runs(
        name, filter=filter, order_by=order_by, max_results=max_results, page_token=page_token
    )
    return Page(items=[RunView.of(run) for run in page.items], next_token=page.next_token)


@router.get("/runs/{run_id}", response_model=RunView, openapi_extra=requires("read"))
def get_run(run_id: RunIdPath, logger: LoggerDep) -> RunView:
    """One run: params, latest metrics, tags, datasets and artifacts (names and digests)."""
    return RunView.of(logger.get_run(run_id))


@router.get(
    "/runs/{run_id}/metrics/{key}", response_model=Page[Metric], openapi_extra=requires("read")
)
def metric_history(
    run_id: RunIdPath,
    key: NamePath,
    logger: LoggerDep,
    max_points: MaxPoints = None,
    max_results: Annotated[int | None, Query(ge=1, le=1000), Decimal] = None,
    page_token: PageToken = None,
) -> Page[Metric]:
    """A metric's points in step order: downsampled for a chart, or raw pages.

    Without ``max_results`` and ``page_token``: at most ``max_points`` points (default 1,000),
    downsampled keeping the first, the last and each bucket's min and max; ``next_token`` is
    null. With either: raw pages of ``max_results`` points (default 1,000) and ``next_token``;
    ``max_points`` may not be combined with paging (422).
    """
    if max_results is not None or page_token is not None:
        if max_points is not None:
            raise InvalidInput("max_points cannot be combined with max_results or page_token")
        return logger.get_metric_history_page(run_id, key, max_results or 1000, page_token)
    points = logger.get_metric_history(run_id, key, max_points=max_points or DEFAULT_MAX_POINTS)
    return Page(items=points)
