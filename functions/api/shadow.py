"""Shadow scoring: the rows a request was answered on, scored again by the policy's shadows.

Never on the request path: the route hands the rows over after computing the answer (``submit``
is a deque append), and a worker thread scores what has gathered in one predictor call per shadow
version, every ``interval`` seconds or as soon as ``batch_rows`` wait. One call for many rows is
the point: a model call has a fixed cost far above a row's (for one churn row, ~all of it), so a
shadow scored per request would cost about as much as the answer itself. XGBoost releases the GIL
while it predicts, so on two cores the worker mostly overlaps with the event loop.

The queue is bounded (``max_rows``): when shadows fall behind, new rows are dropped and counted
(``shadow_dropped_total``), never queued without end. On Lambda the process freezes between
invocations, so there the route scores its shadows itself after the answer (``score``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from functions.api.model_cache import Loaded
from functions.api.observability import METRICS

log = logging.getLogger(__name__)

#: Called with (model, alias, answers, rows, request ids) for each scored batch, the three lists
#: aligned row by row (the prediction log's shadow records).
Sink = Callable[[str, str, list[dict[str, Any]], list[Any], list[str]], None]


def convert(row: BaseModel, target: Loaded) -> BaseModel | None:
    """``row`` for a version whose request schema differs, if it is valid there (else ``None``)."""
    if type(row) is target.served.request:
        return row
    try:
        return target.served.request.model_validate(row.model_dump())
    except ValidationError:
        return None


@dataclass
class _Job:
    name: str
    alias: str
    target: Loaded
    rows: list[Any]
    request_ids: list[str]


class ShadowScorer:
    """A bounded queue of rows to score with shadow versions, and the thread that scores them."""

    def __init__(
        self,
        *,
        max_rows: int = 20_000,
        batch_rows: int = 512,
        interval: float = 0.05,
        sink: Sink | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self.interval = interval
        self.sink = sink
        self._jobs: deque[_Job] = deque()
        self._pending = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    def submit(
        self, name: str, alias: str, target: Loaded, rows: list[Any], request_id: str = ""
    ) -> None:
        """Queue ``rows`` for ``target`` (the version ``alias`` points at). Never blocks long."""
        with self._wake:
            if self._pending + len(rows) > self.max_rows:
                METRICS.shadow_dropped.labels(model=name, variant=alias).inc(len(rows))
                return
            self._jobs.append(_Job(name, alias, target, rows, [request_id] * len(rows)))
            self._pending += len(rows)
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
                self._thread.start()
            if self._pending >= self.batch_rows:
                self._wake.notify()

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is scored; ``False`` if ``timeout`` passed."""
        with self._wake:
            self._wake.notify()
        return self._idle.wait(timeout)

    def score(
        self, name: str, alias: str, target: Loaded, rows: list[Any], request_ids: list[str]
    ) -> None:
        """Score ``rows`` now, in this thread (Lambda: after the answer). Never raises."""
        started = time.perf_counter()
        try:
            pairs = [(converted, request_id) for row, request_id in zip(rows, request_ids,
                     strict=True) if (converted := convert(row, target)) is not None]  # fmt: skip
            usable = [row for row, _ in pairs]
            records = target.predictor.predict_records(usable)
        except Exception:
            METRICS.shadow_failures.labels(model=name, variant=alias).inc()
            log.exception("shadow %s of %s failed", alias, name)
            return
        METRICS.shadow_seconds.labels(model=name, variant=alias).observe(
            time.perf_counter() - started
        )
        label = target.predictor.label
        METRICS.shadow_predictions.labels(model=name, version=label, variant=alias).inc(
            len(records)
        )
        if self.sink is not None:
            try:
                self.sink(name, alias, records, usable, [request_id for _, request_id in pairs])
            except Exception:
                log.exception("recording the shadow predictions of %s failed", name)

    def _take(self) -> list[_Job]:
        with self._wake:
            if not self._jobs:
                self._idle.set()
                self._wake.wait(self.interval)
            if self._pending < self.batch_rows:
                # Let a batch gather (bounded by the interval) unless someone waits on drain.
                self._wake.wait(self.interval)
            jobs = list(self._jobs)
            self._jobs.clear()
            self._pending = 0
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                continue
            # One call per shadow version, over every row queued for it.
            groups: dict[int, _Job] = {}
            for job in jobs:
                group = groups.get(id(job.target))
                if group is None:
                    rows, ids = list(job.rows), list(job.request_ids)
                    groups[id(job.target)] = _Job(job.name, job.alias, job.target, rows, ids)
                else:
                    group.rows.extend(job.rows)
                    group.request_ids.extend(job.request_ids)
            for group in groups.values():
                self.score(group.name, group.alias, group.target, group.rows, group.request_ids)
            with self._wake:
                if not self._jobs:
                    self._idle.set()
