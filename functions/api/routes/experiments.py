"""Experiments, runs and metric histories (read scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from functions.api.auth import AuthRoute, requires
from functions.api.deps import LoggerDep
from functions.api.schemas import Decimal, MaxResults, NamePath, PageToken, RunIdPath
from functions.api.views import RunView
from tracking import Experiment, Metric, Page

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
    max_results: Annotated[int, Query(ge=1, le=1000), Decimal] = 1000,
    page_token: PageToken = None,
) -> Page[Metric]:
    """A metric's points in step order, one page at a time."""
    return logger.metadata.get_metric_history(run_id, key, max_results, page_token)
