"""Outcomes (labels) of logged predictions, stored next to the prediction log.

One ``POST /feedback/{name}`` writes one gzipped JSON Lines object under
``feedback/{model}/{YYYY-MM-DD}/{HH}/{unique}.jsonl.gz`` (the hour it was received), one label per
line: ``{"request_id": ..., "row": 0, "key": ..., "label": 1.0, "time": <ms>, "received": <ms>}``.

Why the artifact store and not the metadata store: labels are append-only and read in bulk, by
time window, together with the prediction log they are joined to; nothing looks one up by id.
Objects in S3 (or files) cost nothing per label, need no new table or key schema on either
backend, and one lifecycle rule can expire both logs together.

A label names its prediction by ``request_id`` (and ``row`` for a batch request), or by ``key``:
the sticky field's value (e.g. the player id), which labels every logged prediction with that
value. When several labels name the same prediction, the latest (by ``time``) wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tracking.artifacts.base import ArtifactStore
from tracking.monitoring.prediction_log import (
    FEEDBACK,
    encode,
    hour_folder,
    object_name,
    read_objects,
)

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class Outcome(BaseModel):
    """One label: for a request (``request_id``, ``row``) or for a sticky key value (``key``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    request_id: Identifier | None = None
    row: Annotated[int, Field(ge=0, le=100_000)] = 0
    key: Identifier | None = None
    label: Annotated[float, Field(ge=0.0, le=1.0, description="0/1, or a probability.")]
    time: datetime | None = Field(default=None, description="When the outcome happened.")

    @model_validator(mode="after")
    def _one_target(self) -> Outcome:
        if (self.request_id is None) == (self.key is None):
            raise ValueError("give exactly one of request_id or key")
        return self


def _ms(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def write_outcomes(
    artifacts: ArtifactStore, model: str, outcomes: Sequence[Outcome], now: datetime
) -> str:
    """Store ``outcomes`` as one object and return its key; all or nothing.

    Raises:
        InvalidInput: a bad model name. StoreUnavailable: the store failed (nothing written).
    """
    received = _ms(now)
    records = [
        {
            "request_id": item.request_id,
            "row": item.row,
            "key": item.key,
            "label": item.label,
            "time": received if item.time is None else _ms(item.time),
            "received": received,
        }
        for item in outcomes
    ]
    key = f"{hour_folder(FEEDBACK, model, now)}/{object_name(now)}"
    artifacts.put_object(key, encode(records))
    return key


def read_outcomes(
    artifacts: ArtifactStore, model: str, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Labels received in the window (filtered on the time they were received)."""
    return [
        record
        for record in read_objects(artifacts, FEEDBACK, model, since, until, time_field="received")
        if isinstance(record.get("label"), int | float) and 0.0 <= record["label"] <= 1.0
    ]


def join_labels(
    predictions: Iterable[dict[str, Any]], outcomes: Iterable[dict[str, Any]]
) -> list[float | None]:
    """The label of each prediction (``None`` when none names it); the latest label wins.

    A label by request id beats a label by key for the same prediction.
    """
    by_request: dict[tuple[str, int], tuple[float, float]] = {}
    by_key: dict[str, tuple[float, float]] = {}
    for outcome in outcomes:
        at = float(outcome.get("time") or 0)
        value = (at, float(outcome["label"]))
        if outcome.get("request_id"):
            target = (str(outcome["request_id"]), int(outcome.get("row") or 0))
            if target not in by_request or by_request[target][0] <= at:
                by_request[target] = value
        elif outcome.get("key"):
            name = str(outcome["key"])
            if name not in by_key or by_key[name][0] <= at:
                by_key[name] = value
    labels: list[float | None] = []
    for record in predictions:
        hit = by_request.get((str(record.get("request_id")), int(record.get("row") or 0)))
        if hit is None and record.get("sticky") is not None:
            hit = by_key.get(str(record["sticky"]))
        labels.append(None if hit is None else hit[1])
    return labels
