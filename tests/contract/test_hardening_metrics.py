"""Concurrent metric logging under injected faults: nothing acknowledged is lost or doubled.

8 threads log 500 points each to ONE run through ``ExperimentLogger.start_run`` /
``Run.log_metric``. 10% of the points repeat an existing (key, step) with the same value, and
10% of the store calls fail:

- DynamoDB (moto in-process and moto's server): a ``before-send`` hook answers 10% of the API
  calls with ``ProvisionedThroughputExceededException`` / ``ThrottlingException`` (for one or two
  attempts, which botocore's retries absorb, or for every attempt, which reaches the ``Run`` as
  ``StoreUnavailable``), or, on ``BatchWriteItem``, writes half the items and returns the rest
  as ``UnprocessedItems``.
- SQLite: 10% of ``log_batch`` calls fail with "database is locked", half of them before the
  transaction and half after it committed (the acknowledgement is lost, the points are stored).

The run keeps a failed batch buffered and re-sends it; afterwards every metric's history is
exactly the distinct set of points logged.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from tests.contract.conftest import Backend
from tests.contract.faults import (
    Call,
    Injector,
    dynamodb_clients,
    dynamodb_error,
    dynamodb_ok,
    no_backoff,
)
from tracking import ExperimentLogger
from tracking.entities import Metric, RunStatus
from tracking.errors import StoreUnavailable

SEED = 20240607
THREADS = 8
POINTS_PER_THREAD = 500
DUPLICATE_SHARE = 0.10
FAULT_SHARE = 0.10
KEYS = ("loss", "auc", "lr", "grad_norm")
#: Points per batch: small enough that a run sends a few hundred batches, so 10% of them fail.
BUFFER_SIZE = {"sqlite": 16, "moto": 48, "moto_server": 48}
FINAL_FLUSH_ATTEMPTS = 50
BASE_TIMESTAMP = 1_700_000_000_000

Point = tuple[str, int, float, int]  # key, step, value, timestamp


def plan(seed: int) -> list[list[Point]]:
    """Each thread's points, in order: 90% new, 10% repeats of an earlier new point."""
    rng = random.Random(seed)
    duplicates = int(POINTS_PER_THREAD * DUPLICATE_SHARE)
    slots = [
        set(rng.sample(range(10, POINTS_PER_THREAD), duplicates)) for _ in range(THREADS)
    ]  # fmt: skip
    fresh: list[list[Point | None]] = []
    for thread in range(THREADS):
        row: list[Point | None] = []
        for index in range(POINTS_PER_THREAD):
            if index in slots[thread]:
                row.append(None)
                continue
            key = KEYS[index % len(KEYS)]
            step = thread * 10_000 + index
            row.append((key, step, rng.uniform(-1e3, 1e3), BASE_TIMESTAMP + step))
        fresh.append(row)
    plans: list[list[Point]] = []
    for thread, row in enumerate(fresh):
        points: list[Point] = []
        for index, point in enumerate(row):
            if point is None:
                # Another thread's earlier point half the time: the races are across threads.
                source = thread if rng.random() < 0.5 else rng.randrange(THREADS)
                earlier = [p for p in fresh[source][:index] if p is not None]
                point = rng.choice(earlier)
            points.append(point)
        plans.append(points)
    return plans


@dataclass
class Faults:
    """What was injected, by kind."""

    kinds: Counter[str] = field(default_factory=Counter)

    def total(self) -> int:
        return sum(self.kinds.values())


class DynamoDBThrottler:
    """Decides per API call (not per attempt): 10% of calls meet throttling or UnprocessedItems."""

    def __init__(self, injector: Injector, seed: int, metrics_table: str) -> None:
        self.injector = injector
        self.rng = random.Random(seed)
        self.metrics_table = metrics_table
        self.decisions: dict[str, tuple[str, int]] = {}
        self.lock = threading.Lock()
        self.faults = Faults()

    def _decide(self, call: Call) -> tuple[str, int]:
        with self.lock:
            decided = self.decisions.get(call.invocation)
            if decided is None:
                roll = self.rng.random()
                if roll >= FAULT_SHARE:
                    decided = ("none", 0)
                elif call.operation == "BatchWriteItem" and self.rng.random() < 0.4:
                    decided = ("unprocessed", 1)
                elif self.rng.random() < 0.3:
                    decided = ("throttled-every-attempt", 99)  # surfaces as StoreUnavailable
                else:
                    decided = ("throttled-then-ok", self.rng.choice((1, 2)))
                self.decisions[call.invocation] = decided
                if decided[0] != "none":
                    self.faults.kinds[f"{call.operation}:{decided[0]}"] += 1
            return decided

    def __call__(self, call: Call) -> AWSResponse | None:
        kind, attempts = self._decide(call)
        if kind == "none" or call.attempt > attempts:
            return None
        if kind == "unprocessed":
            body = call.body()
            requests = body["RequestItems"][self.metrics_table]
            keep, rest = requests[: len(requests) // 2], requests[len(requests) // 2 :]
            if keep:
                self.injector.forward_body(
                    call, {**body, "RequestItems": {self.metrics_table: keep}}
                )
            self.injector.count("unprocessed items", len(rest))
            return dynamodb_ok(call, {"UnprocessedItems": {self.metrics_table: rest}})
        code = (
            "ProvisionedThroughputExceededException" if call.attempt % 2 else "ThrottlingException"
        )
        self.injector.count(code)
        return dynamodb_error(call, code, "Rate of requests exceeds the allowed throughput")


class SQLiteLocker:
    """10% of ``log_batch`` calls fail with "database is locked": before or after the commit."""

    def __init__(self, original: Callable[..., None], seed: int) -> None:
        self.original = original
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.active = True
        self.faults = Faults()

    def __call__(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        with self.lock:
            roll = self.rng.random()
            where = "before" if self.rng.random() < 0.5 else "after-commit"
        if not self.active or roll >= FAULT_SHARE:
            self.original(run_id, metrics=metrics, params=params, tags=tags)
            return
        with self.lock:
            self.faults.kinds[f"log_batch:locked-{where}"] += 1
        if where == "after-commit":
            self.original(run_id, metrics=metrics, params=params, tags=tags)
        cause = sqlite3.OperationalError("database is locked")
        raise StoreUnavailable(f"SQLite database is unavailable: {cause}") from cause


@pytest.mark.parametrize("backend", ["sqlite", "moto", "moto_server"], indirect=True)
def test_concurrent_metrics_with_duplicates_and_throttling(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = plan(SEED)
    distinct = {(key, step): (value, ts) for points in plans for key, step, value, ts in points}
    sent = sum(len(points) for points in plans)

    logger = ExperimentLogger(
        metadata_store=backend.metadata,
        artifact_store=backend.artifacts,
        buffer_size=BUFFER_SIZE[backend.name],
    )
    run = logger.start_run("hardening-metrics", run_name="races")

    injector: Injector | None = None
    faults: Faults
    if backend.name == "sqlite":
        locker = SQLiteLocker(backend.metadata.log_batch, SEED)
        monkeypatch.setattr(backend.metadata, "log_batch", locker)
        faults = locker.faults

        def stop_faults() -> None:
            locker.active = False
    else:
        no_backoff(monkeypatch, backend.metadata)
        injector = Injector()
        store: Any = backend.metadata
        throttler = DynamoDBThrottler(injector, SEED, f"{store.table_prefix}-metrics")
        injector.rule = throttler
        for client in dynamodb_clients(store):
            injector.attach(client)
        faults = throttler.faults

        def stop_faults() -> None:
            assert injector is not None
            injector.active = False

    surfaced: Counter[str] = Counter()
    surfaced_lock = threading.Lock()
    barrier = threading.Barrier(THREADS)
    crashed: list[BaseException] = []

    def work(points: list[Point]) -> None:
        try:
            barrier.wait()
            for key, step, value, timestamp in points:
                try:
                    run.log_metric(key, value, step=step, timestamp=timestamp)
                except StoreUnavailable:
                    # The point is in the run's buffer; the failed batch is re-sent later.
                    with surfaced_lock:
                        surfaced["log_metric saw StoreUnavailable"] += 1
        except BaseException as exc:  # reported below, with the thread's traceback
            crashed.append(exc)

    threads = [threading.Thread(target=work, args=(points,)) for points in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a logging thread hung"
    assert not crashed, crashed

    for _ in range(FINAL_FLUSH_ATTEMPTS):
        try:
            run.flush()
            break
        except StoreUnavailable:
            surfaced["final flush saw StoreUnavailable"] += 1
    else:
        pytest.fail(f"the buffer was not delivered in {FINAL_FLUSH_ATTEMPTS} flushes")
    stop_faults()
    run.end()

    stored: dict[tuple[str, int], tuple[float, int]] = {}
    duplicated = 0
    for key in KEYS:
        for point in logger.get_metric_history(run.run_id, key):
            if (key, point.step) in stored:
                duplicated += 1
            stored[(key, point.step)] = (point.value, point.timestamp)
    lost = set(distinct) - set(stored)
    unexpected = set(stored) - set(distinct)
    wrong = [k for k in set(stored) & set(distinct) if stored[k] != distinct[k]]

    print(  # noqa: T201 - the counts are part of the suite's result
        f"\n[metric races/{backend.name}] threads={THREADS} points sent={sent} "
        f"duplicates sent={sent - len(distinct)} distinct={len(distinct)} stored={len(stored)} "
        f"lost={len(lost)} duplicated={duplicated} unexpected={len(unexpected)} "
        f"wrong values={len(wrong)} injected faults={faults.total()} {dict(faults.kinds)} "
        f"{'' if injector is None else dict(injector.injected)} surfaced={dict(surfaced)}"
    )
    assert faults.total() > 0, "no fault was injected"
    assert sent - len(distinct) >= int(THREADS * POINTS_PER_THREAD * DUPLICATE_SHARE) * 0.9
    assert not lost
    assert duplicated == 0
    assert not unexpected
    assert not wrong

    record = logger.get_run(run.run_id)
    assert record.status == RunStatus.FINISHED
    for key in KEYS:
        last = max(step for k, step in distinct if k == key)
        assert record.metrics[key].step == last
        assert record.metrics[key].value == distinct[(key, last)][0]
