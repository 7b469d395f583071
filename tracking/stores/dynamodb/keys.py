"""Key and sort-key layout of the tracking and metrics tables (see ``schema``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from tracking.errors import InvalidInput

T = TypeVar("T")

_EXPERIMENTS_GSI_PK = "EXPERIMENTS"
_EXPERIMENT_SK = "EXP"
_RUN_SK = "RUN"
_PARAM = "PARAM#"
_TAG = "TAG#"
_METRIC = "METRIC#"
_DATASET = "DATASET#"
_ARTIFACT = "ARTIFACT#"
_MODELS_GSI_PK = "MODELS"
_MODEL_SK = "MODEL"
_VERSION = "V#"
_ALIAS = "ALIAS#"
_HISTORY = "HIST#"
_IDEMPOTENCY = "IDEMPOTENCY"
_TRAFFIC_SK = "TRAFFIC"
#: Outbox events: ``EVENT#{event_id}`` / ``EVENT``, listed by status on gsi1. The stream
#: function's filter matches this sort key (template.yaml, functions/events/handler.py).
_EVENT_SK = "EVENT"
#: Runs are listed newest first by querying gsi1 forward on ``INVERSION - start_time``, so equal
#: start times fall back to ascending run id, as in the SQLite store's ORDER BY.
_START_TIME_INVERSION = 10**16 - 1
_START_TIME_DIGITS = 16


def _experiment_pk(name: str) -> str:
    return f"EXP#{name}"


def _run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def _runs_gsi_pk(experiment_id: str) -> str:
    return f"RUNS#{experiment_id}"


def _runs_gsi_sk(start_time: int, run_id: str) -> str:
    if isinstance(start_time, bool) or not 0 <= start_time <= _START_TIME_INVERSION:
        raise InvalidInput("run start_time must be non-negative integer milliseconds")
    return f"{_START_TIME_INVERSION - start_time:0{_START_TIME_DIGITS}d}#{run_id}"


def _model_pk(name: str) -> str:
    return f"MODEL#{name}"


def _version_sk(version: int) -> str:
    # Zero-padded so that the sort key orders versions numerically.
    return f"{_VERSION}{version:010d}"


def _history_sk(timestamp: int, clock_ns: int, change_id: str) -> str:
    return f"{_HISTORY}{timestamp:013d}#{clock_ns:019d}#{change_id}"


def _idempotency_pk(key: str) -> str:
    return f"{_IDEMPOTENCY}#{key}"


def _event_pk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def _events_gsi_pk(status: str) -> str:
    return f"EVENTS#{status}"


def _events_gsi_sk(time: int, event_id: str) -> str:
    return f"{time:013d}#{event_id}"


def _metric_pk(run_id: str, key: str) -> str:
    return f"{run_id}#{key}"


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
