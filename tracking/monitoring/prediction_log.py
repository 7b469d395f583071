"""The prediction log's storage format, and its reader.

Each batch is one gzipped JSON Lines object under
``predictions/{model}/{YYYY-MM-DD}/{HH}/{unique}.jsonl.gz`` (UTC hour of the records' time), one
prediction per line:

    {"request_id": "...", "row": 0, "time": 1733166062123, "model": "churn",
     "variant": "production", "version": "v3", "score": 0.81, "risk_level": "high",
     "sticky": "p_1", "output": null, "features": {...}}

``features`` is there only when the server runs with ``PREDICTION_LOG_FEATURES=true``.
The writer is the API's ``functions.api.prediction_log.PredictionLog``; this module needs no API.
"""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tracking.artifacts.base import ArtifactStore
from tracking.errors import InvalidInput, TrackingError
from tracking.validation import validate_name

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
#: The most a report reads: a window longer than this is refused (each hour is one listing).
MAX_WINDOW = timedelta(days=31)
#: One object's size limit when reading (a batch of 1,000 records is ~100 KB gzipped).
MAX_OBJECT_BYTES = 32 * 1024 * 1024
_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` -> a positive ``timedelta`` of at most ``MAX_WINDOW``.

    Raises:
        InvalidInput: not a number followed by m, h or d, zero, or longer than ``MAX_WINDOW``.
    """
    raw = text.strip() if isinstance(text, str) else ""
    unit = raw[-1:].lower()
    number = raw[:-1]
    if unit not in _UNITS or not number.isdigit() or len(number) > 6:
        raise InvalidInput(f"since must look like 30m, 24h or 7d, not {str(text)[:32]!r}")
    window = timedelta(seconds=int(number) * _UNITS[unit])
    if window <= timedelta(0) or window > MAX_WINDOW:
        raise InvalidInput(f"since must be between 1m and {MAX_WINDOW.days}d")
    return window


def hour_folder(kind: str, model: str, when: datetime) -> str:
    """``{kind}/{model}/{YYYY-MM-DD}/{HH}`` for the UTC hour of ``when``."""
    when = when.astimezone(UTC)
    return f"{kind}/{validate_name(model, 'model name')}/{when:%Y-%m-%d}/{when:%H}"


def object_name(when: datetime) -> str:
    """A unique, sortable file name: ``20261202T190102Z-<12 hex>.jsonl.gz``."""
    return f"{when.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}.jsonl.gz"


#: One encoder for every record: ``json.dumps`` with options builds a new one per call, which
#: was a third of the writer's time per record.
ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
#: Level 1: a batch of 1,000 churn records compressed in 0.28 ms against 0.80 ms at level 6,
#: for 2.8 KB instead of 2.3 KB; the writer shares the serving process's CPU.
COMPRESS_LEVEL = 1


def encode(records: Iterable[dict[str, Any]]) -> bytes:
    """Gzipped JSON Lines (``mtime=0``: the bytes depend only on the records)."""
    return encode_lines(list(map(ENCODER.encode, records)))


def encode_lines(lines: Sequence[str], compress: Callable[..., bytes] = gzip.compress) -> bytes:
    """Gzipped JSON Lines of records already encoded, one per line (no newline inside).

    ``compress`` is ``gzip.compress`` or any function with its signature that writes the same
    format (the API's writer passes ISA-L's, see functions/api/prediction_log.py).
    """
    text = "\n".join(lines) + "\n" if lines else ""
    return compress(text.encode(), compresslevel=COMPRESS_LEVEL, mtime=0)


def decode(data: bytes) -> Iterator[dict[str, Any]]:
    """The records of one object; a line that is not a JSON object is skipped."""
    for line in gzip.decompress(data).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def _folders(kind: str, model: str, since: datetime, until: datetime) -> list[str]:
    """The folders to list: a whole day inside the window as one prefix, else hour by hour."""
    folders: list[str] = []
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    while hour <= end:
        day_start = hour.replace(hour=0)
        if hour == day_start and day_start + timedelta(days=1) <= end and day_start >= since:
            folders.append(f"{kind}/{model}/{day_start:%Y-%m-%d}")
            hour = day_start + timedelta(days=1)
            continue
        folders.append(hour_folder(kind, model, hour))
        hour += timedelta(hours=1)
    return folders


def read_objects(
    artifacts: ArtifactStore,
    kind: str,
    model: str,
    since: datetime,
    until: datetime,
    *,
    max_records: int | None = None,
    time_field: str = "time",
) -> Iterator[dict[str, Any]]:
    """Records of ``kind`` (``predictions`` or ``feedback``) stored for hours in the window.

    Records are filtered on their ``time_field`` (epoch ms) when they carry one. An object that
    cannot be read or decoded is logged and skipped: one damaged batch must not hide a day.

    Raises:
        InvalidInput: a bad model name. StoreUnavailable: listing failed.
    """
    validate_name(model, "model name")
    low, high = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
    count = 0
    for folder in _folders(kind, model, since, until):
        for key in artifacts.list_objects(folder):
            try:
                records = list(decode(artifacts.get_object(key, MAX_OBJECT_BYTES)))
            except (TrackingError, OSError, EOFError) as exc:
                log.warning("skipping unreadable log object %s: %s", key, exc)
                continue
            for record in records:
                at = record.get(time_field)
                if isinstance(at, int | float) and not low <= at <= high:
                    continue
                yield record
                count += 1
                if max_records is not None and count >= max_records:
                    return


def read_predictions(
    artifacts: ArtifactStore,
    model: str,
    since: datetime,
    until: datetime,
    *,
    max_records: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The logged predictions of ``model`` with ``since <= time <= until``.

    Raises:
        InvalidInput: a bad model name. StoreUnavailable: listing failed.
    """
    return read_objects(artifacts, PREDICTIONS, model, since, until, max_records=max_records)
