"""Metric histories of several runs at once, for the compare view (read scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from functions.api.auth import AuthRoute, requires
from functions.api.deps import LoggerDep
from functions.api.schemas import DEFAULT_MAX_POINTS, MaxPoints, MetricHistories
from tracking import InvalidInput
from tracking.stores.ports.metadata import MAX_HISTORY_KEYS, MAX_HISTORY_RUNS

router = APIRouter(route_class=AuthRoute, tags=["experiments"])


def _names(field: str, text: str | None, limit: int) -> list[str] | None:
    """``a,b,c`` as a list of distinct names; the message names the query field."""
    if text is None:
        return None
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not 1 <= len(names) <= limit:
        raise InvalidInput(f"{field}: give 1 to {limit} comma-separated names; got {len(names)}")
    return names


@router.get("/metric-histories", response_model=MetricHistories, openapi_extra=requires("read"))
def metric_histories(
    logger: LoggerDep,
    runs: Annotated[
        str, Query(max_length=2000, description=f"Run ids, comma-separated (1-{MAX_HISTORY_RUNS}).")
    ],
    keys: Annotated[
        str | None,
        Query(
            max_length=20_000,
            description=f"Metric keys, comma-separated (1-{MAX_HISTORY_KEYS}); default: every "
            "key the runs have a latest value for.",
        ),
    ] = None,
    max_points: MaxPoints = None,
) -> MetricHistories:
    """Histories of 1-10 runs, each downsampled to at most max_points (default 1,000)."""
    run_ids = _names("runs", runs, MAX_HISTORY_RUNS)
    assert run_ids is not None  # runs is required
    histories = logger.get_metric_histories(
        run_ids, _names("keys", keys, MAX_HISTORY_KEYS), max_points=max_points or DEFAULT_MAX_POINTS
    )
    return MetricHistories(histories=histories)
