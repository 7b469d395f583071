"""Metric history: chunked layout against the previous release's one item per point.

Measured in the same run, on SQLite and on DynamoDB served by a real moto server over HTTP on
127.0.0.1 (requests and bytes counted with botocore ``before-send`` / ``before-parse`` hooks on
the store's own clients):

- ``write 1 key``: ``--points`` points of one metric, ``log_batch`` calls of 500 (the SDK's
  buffer);
- ``write runs``: ``--runs`` runs x ``--keys`` keys x ``--steps`` steps, each run's points in
  step order, 500 a flush;
- ``read full``: every point of the ``--points`` history (``iter_metric_history``);
- ``read 1000``: the SDK's ``get_metric_history(run, key, max_points=1000)``.

``--charts`` measures only the chart reads on SQLite instead (the run page: ``--chart-keys``
metrics of ``--points`` points, 1,000 points each): ``get_metric_history(max_points=1000)`` of
one key and ``get_metric_histories([run], keys, max_points=1000)`` of all, against the previous
path kept here as ``old_*`` (the full history as ``Metric`` entities, then ``downsample``), and
the path before ``metric_blocks`` (every raw row, then ``downsample_rows``: ``raw_rows_history``).
Every result is checked equal to the old one.

    python bench/metric_history.py --charts [--points 100000] [--chart-keys 20] [--repeats 5]

Recorded when the store still read raw rows, under the positional-bucket rule of that release
(2 shared cores under a load of ~5, Python 3.11, defaults): 1 key old 2,835 ms, new 332 ms
(8.5x), a candidate bucketing in SQL with window functions 1,252 ms (2.3x); 20 keys old 29.9 s,
new 3.0 s (10.1x), SQL candidate 11.0 s (2.7x). The window functions sorted each history twice,
which cost more than handing 100,000 plain tuples to Python. The rule is now by step range
(``tracking/downsample.py``), which SQLite answers from ``metric_blocks``; that candidate, which
implemented the positional rule, is gone.

The baseline (``old``) is the previous release's writer and reader, kept here verbatim: one
BatchWriteItem per 25 points and a 1,000-point Query page per ``get_metric_history`` call.
``--chunk-steps`` measures several chunk sizes of the new layout. Medians of ``--repeats``.

    python bench/metric_history.py [--points 100000] [--repeats 3] [--chunk-steps 100,1000]

Figures recorded when choosing ``CHUNK_STEPS`` (2 shared cores, moto 5, Python 3.11): see the
table in the report of the change that added this file and ``tracking/stores/dynamodb/history.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracking import ExperimentLogger, Metric
from tracking.artifacts.local import LocalArtifactStore
from tracking.downsample import check_max_points, downsample, downsample_rows, metrics_of_rows
from tracking.entities import Page
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.dynamodb import DynamoDBStore, history
from tracking.stores.dynamodb import metrics as dynamodb_metrics
from tracking.stores.dynamodb.keys import _chunks, _metric_pk
from tracking.stores.dynamodb.writes import BATCH_WRITE_LIMIT
from tracking.stores.ports.metadata import MAX_PAGE_SIZE, MetadataStore
from tracking.stores.sqlite import SQLiteStore, blocks

BATCH = 500


# -- the previous release, verbatim (DynamoDB) -------------------------------------------------


class OldDynamoDBStore(DynamoDBStore):
    """The previous release's metric history: one item per point, 1,000-point read pages."""

    def create_run(self, **kwargs: Any) -> Any:
        run = super().create_run(**kwargs)
        # Old runs have no history_format: the new reader would also Query chunks; the old
        # one never does. Remove the mark so the old store is exactly the old items.
        self._models.TrackingItem(f"RUN#{run.run_id}", "RUN").update(
            actions=[self._models.TrackingItem.history_format.remove()]
        )
        return run

    def _write_metric_history(self, points: Sequence[Metric], run_id: str) -> None:
        model = self._models.MetricPoint
        items = [
            model(
                _metric_pk(run_id, point.key),
                point.step,
                value=repr(float(point.value)),
                timestamp=point.timestamp,
            ).serialize()
            for point in points
        ]
        for chunk in _chunks(items, BATCH_WRITE_LIMIT):
            self._batch_write([{"PutRequest": {"Item": item}} for item in chunk])

    def get_metric_history(
        self, run_id: str, key: str, max_results: int = MAX_PAGE_SIZE, page_token: str | None = None
    ) -> Page[Metric]:
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        start_key = None
        pk = _metric_pk(run_id, key)
        if page_token is not None:
            step = decode_token(page_token, ("step",))["step"]
            start_key = {"pk": {"S": pk}, "step": {"N": str(step)}}
        self._require_run(run_id)
        model = self._models.MetricPoint
        items = list(
            model.query(pk, consistent_read=True, limit=limit + 1, last_evaluated_key=start_key)
        )
        points = [
            Metric(
                key=key, value=float(item.value), step=int(item.step), timestamp=int(item.timestamp)
            )
            for item in items[:limit]
        ]
        token = encode_token({"step": points[-1].step}) if len(items) > limit else None
        return Page(items=points, next_token=token)

    def iter_metric_history(self, run_id: str, key: str) -> Iterator[Metric]:
        return MetadataStore.iter_metric_history(self, run_id, key)


class OldSQLiteStore(SQLiteStore):
    """The previous release's SQLite reads: 1,000-point pages (writes did not change)."""

    def iter_metric_history(self, run_id: str, key: str) -> Iterator[Metric]:
        return MetadataStore.iter_metric_history(self, run_id, key)


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Traffic:
    requests: int = 0
    sent: int = 0
    received: int = 0
    operations: dict[str, int] = field(default_factory=dict)

    def before_send(self, request: Any, **_: Any) -> None:
        self.requests += 1
        body = request.body or b""
        self.sent += len(body)
        operation = request.headers.get("X-Amz-Target", b"")
        if isinstance(operation, bytes):
            operation = operation.decode()
        name = str(operation).rsplit(".", 1)[-1]
        self.operations[name] = self.operations.get(name, 0) + 1

    def before_parse(self, response_dict: dict[str, Any], **_: Any) -> None:
        self.received += len(response_dict.get("body") or b"")


def attach(store: DynamoDBStore, traffic: Traffic) -> None:
    for model in (store._models.TrackingItem, store._models.MetricPoint):
        events = model._get_connection().connection.client.meta.events
        events.register("before-send.dynamodb", traffic.before_send)
        events.register("before-parse.dynamodb", traffic.before_parse)


def points_of(key: str, count: int, start: int = 0) -> list[Metric]:
    return [
        Metric(key=key, value=1.0 / (step + 1) + (step % 7) * 1e-3, step=step,
               timestamp=1_700_000_000_000 + step)
        for step in range(start, start + count)
    ]  # fmt: skip


@dataclass
class Figures:
    write_one: list[float] = field(default_factory=list)
    write_runs: list[float] = field(default_factory=list)
    read_full: list[float] = field(default_factory=list)
    read_1000: list[float] = field(default_factory=list)
    write_requests: int = 0
    read_full_requests: int = 0
    read_full_bytes: int = 0
    read_1000_requests: int = 0
    read_1000_bytes: int = 0
    items: int = 0
    largest_item: int = 0


def measure(
    make: Callable[[], MetadataStore], points: int, runs: int, keys: int, steps: int,
    figures: Figures,
) -> None:  # fmt: skip
    store = make()
    traffic = Traffic()
    if isinstance(store, DynamoDBStore):
        attach(store, traffic)
    artifacts = LocalArtifactStore(tempfile.mkdtemp())
    logger = ExperimentLogger(metadata_store=store, artifact_store=artifacts)
    experiment = store.get_or_create_experiment("bench")

    def new_run() -> str:
        run_id = uuid.uuid4().hex
        store.create_run(experiment=experiment, run_id=run_id, run_name=None, tags={},
                         parent_run_id=None, start_time=1)  # fmt: skip
        return run_id

    run_id = new_run()
    history_points = points_of("loss", points)
    before = traffic.requests
    started = time.perf_counter()
    for part in _chunks(history_points, BATCH):
        store.log_batch(run_id, metrics=part)
    figures.write_one.append(points / (time.perf_counter() - started))
    figures.write_requests = traffic.requests - before

    plan = []
    for _ in range(runs):
        rid = new_run()
        per_run = [
            Metric(key=f"k{k}", value=float(step * keys + k), step=step, timestamp=step)
            for step in range(steps)
            for k in range(keys)
        ]
        plan.append((rid, per_run))
    started = time.perf_counter()
    for rid, per_run in plan:
        for part in _chunks(per_run, BATCH):
            store.log_batch(rid, metrics=part)
    figures.write_runs.append(runs * keys * steps / (time.perf_counter() - started))

    before, sent_before = traffic.requests, traffic.received
    started = time.perf_counter()
    full = list(store.iter_metric_history(run_id, "loss"))
    figures.read_full.append(time.perf_counter() - started)
    figures.read_full_requests = traffic.requests - before
    figures.read_full_bytes = traffic.received - sent_before
    assert [p.step for p in full] == list(range(points)), "history read back wrong"

    before, sent_before = traffic.requests, traffic.received
    started = time.perf_counter()
    shown = logger.get_metric_history(run_id, "loss", max_points=1000)
    figures.read_1000.append(time.perf_counter() - started)
    figures.read_1000_requests = traffic.requests - before
    figures.read_1000_bytes = traffic.received - sent_before
    assert len(shown) <= 1000

    if isinstance(store, DynamoDBStore):
        import boto3
        from botocore.config import Config

        from tracking.stores.dynamodb.writes import item_size

        # Not the store's client: moto's Scan of a big table takes longer than its 5 s timeout.
        client = boto3.client(
            "dynamodb", endpoint_url=store.host, region_name="us-east-1",
            config=Config(read_timeout=600),
        )  # fmt: skip
        table = f"{store.table_prefix}-metrics"
        sizes = [
            item_size(item)
            for page in client.get_paginator("scan").paginate(TableName=table)
            for item in page["Items"]
        ]
        figures.items = len(sizes)
        figures.largest_item = max(sizes)
    store.close()


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def chunk_steps(steps: int) -> Iterator[None]:
    saved = history.CHUNK_STEPS
    history.CHUNK_STEPS = steps
    dynamodb_metrics.CHUNK_STEPS = steps
    try:
        yield
    finally:
        history.CHUNK_STEPS = saved
        dynamodb_metrics.CHUNK_STEPS = saved


# -- chart reads (--charts) ----------------------------------------------------------------------

CHART_POINTS = 1000


def old_history(store: MetadataStore, run_id: str, key: str, max_points: int) -> list[Metric]:
    """The previous SDK path: every point as an entity, then ``downsample``."""
    return downsample(list(store.iter_metric_history(run_id, key)), max_points)


def old_histories(
    store: MetadataStore, run_ids: Sequence[str], keys: Sequence[str], max_points: int
) -> dict[str, dict[str, list[Metric]]]:
    """The previous SDK bulk path: full histories from the store, downsampled one by one."""
    histories = store.get_metric_histories(run_ids, keys)
    return {
        run_id: {key: downsample(points, max_points) for key, points in by_key.items()}
        for run_id, by_key in histories.items()
    }


def raw_rows_history(store: SQLiteStore, run_id: str, key: str, max_points: int) -> list[Metric]:
    """The SQLite read before ``metric_blocks``: every raw row, then ``downsample_rows``."""
    check_max_points(max_points)
    with store.db.read() as conn:
        rows = blocks.history_rows(conn, run_id, key)
    return metrics_of_rows(key, downsample_rows(rows, max_points))


def timed(work: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def charts(points: int, keys: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "charts.db")
        store.initialize()
        logger = ExperimentLogger(
            metadata_store=store, artifact_store=LocalArtifactStore(Path(folder) / "artifacts")
        )
        run = store.create_run(
            experiment=store.get_or_create_experiment("charts"), run_id="r", run_name=None,
            tags={}, parent_run_id=None, start_time=1,
        )  # fmt: skip
        names = [f"m{k}" for k in range(keys)]
        for number, key in enumerate(names):
            history = [
                Metric(key=key, value=((step * 7919 + number) % 1009) / 1009.0, step=step,
                       timestamp=step)
                for step in range(points)
            ]  # fmt: skip
            for part in _chunks(history, BATCH):
                store.log_batch(run.run_id, metrics=part)
        print(f"  wrote {keys} x {points:,} points", file=sys.stderr, flush=True)
        one = names[0]
        rows: list[tuple[str, float, float]] = []
        base, expected = timed(lambda: old_history(store, "r", one, CHART_POINTS), repeats)
        new, got = timed(lambda: logger.get_metric_history("r", one, CHART_POINTS), repeats)
        assert got == expected, "new single read differs from the old one"
        raw, got_raw = timed(lambda: raw_rows_history(store, "r", one, CHART_POINTS), repeats)
        assert got_raw == expected, "raw rows + downsample_rows differs from the old one"
        rows += [
            ("1 key: old (entities + downsample)", base, 1.0),
            ("1 key: raw rows + downsample_rows", raw, base / raw),
            ("1 key: new (metric_blocks)", new, base / new),
        ]
        base_all, expected_all = timed(
            lambda: old_histories(store, ["r"], names, CHART_POINTS), repeats
        )
        new_all, got_all = timed(
            lambda: logger.get_metric_histories(["r"], names, max_points=CHART_POINTS), repeats
        )
        assert got_all == expected_all, "new bulk read differs from the old one"
        raw_all, got_raw_all = timed(
            lambda: {"r": {k: raw_rows_history(store, "r", k, CHART_POINTS) for k in names}},
            repeats,
        )
        assert got_raw_all == expected_all, "raw rows bulk differs from the old one"
        rows += [
            (f"{keys} keys: old (entities + downsample)", base_all, 1.0),
            (f"{keys} keys: raw rows + downsample_rows", raw_all, base_all / raw_all),
            (f"{keys} keys: new get_metric_histories", new_all, base_all / new_all),
        ]
        store.close()
    print(f"\nSQLite, {points:,} points per key, max_points={CHART_POINTS}, "
          f"median of {repeats}; every result equal to the old one\n")  # fmt: skip
    header = f"{'read':45} {'median':>9} {'x old':>7}"
    print(header)
    print("-" * len(header))
    for name, seconds, ratio in rows:
        print(f"{name:45} {seconds * 1000:>7.0f}ms {ratio:>6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keys", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-steps", default=str(history.CHUNK_STEPS))
    parser.add_argument(
        "--skip-old-dynamodb", action="store_true",
        help="no per-point baseline (moto pages a 100,000-item partition in minutes)",
    )  # fmt: skip
    parser.add_argument("--charts", action="store_true", help="only the SQLite chart reads")
    parser.add_argument("--chart-keys", type=int, default=20)
    args = parser.parse_args()
    if args.charts:
        charts(args.points, args.chart_keys, args.repeats)
        return
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    table: dict[str, Figures] = {}
    sizes = {"points": args.points, "runs": args.runs, "keys": args.keys, "steps": args.steps}
    with tempfile.TemporaryDirectory() as folder, moto_server() as url:

        def sqlite(kind: type[SQLiteStore]) -> Callable[[], MetadataStore]:
            def make() -> MetadataStore:
                store = kind(Path(folder) / f"{uuid.uuid4().hex}.db")
                store.initialize()
                return store

            return make

        def dynamodb(kind: type[DynamoDBStore]) -> Callable[[], MetadataStore]:
            def make() -> MetadataStore:
                store = kind(
                    f"b{uuid.uuid4().hex[:12]}",
                    host=url,
                    region="us-east-1",
                    read_timeout_seconds=120,
                )  # moto pages a partition in O(its size): 100,000 items take seconds
                store.initialize()
                return store

            return make

        cases: list[tuple[str, Callable[[], MetadataStore], int | None]] = [
            ("sqlite old", sqlite(OldSQLiteStore), None),
            ("sqlite new", sqlite(SQLiteStore), None),
        ]
        if not args.skip_old_dynamodb:
            cases.append(("dynamodb old (1 item/point)", dynamodb(OldDynamoDBStore), None))
        for steps in (int(s) for s in args.chunk_steps.split(",")):
            cases.append((f"dynamodb chunks C={steps}", dynamodb(DynamoDBStore), steps))
        for _ in range(args.repeats):
            for name, make, steps in cases:
                figures = table.setdefault(name, Figures())
                with chunk_steps(steps or history.CHUNK_STEPS):
                    measure(make, figures=figures, **sizes)
                print(f"  done {name}", file=sys.stderr, flush=True)
    med = statistics.median
    print(f"\n{args.points:,} points of one key; {args.runs} runs x {args.keys} keys x "
          f"{args.steps} steps; batches of {BATCH}; median of {args.repeats}\n")  # fmt: skip
    header = (
        f"{'layout':30} {'write 1 key':>12} {'write runs':>11} {'write req':>9} "
        f"{'read full':>10} {'req':>4} {'MB':>6} {'read 1000':>10} {'req':>4} "
        f"{'items':>7} {'max item':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, f in table.items():
        print(
            f"{name:30} {med(f.write_one):>9,.0f}p/s {med(f.write_runs):>8,.0f}p/s "
            f"{f.write_requests:>9} {med(f.read_full):>9.2f}s {f.read_full_requests:>4} "
            f"{f.read_full_bytes / 1e6:>6.2f} {med(f.read_1000):>9.2f}s "
            f"{f.read_1000_requests:>4} {f.items or '-':>7} "
            f"{(str(f.largest_item) + ' B') if f.largest_item else '-':>9}"
        )


if __name__ == "__main__":
    main()
