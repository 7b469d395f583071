"""Metric logging throughput: batched (the SDK's buffer) against one request per point.

For each backend (SQLite; DynamoDB + S3 on a moto server over HTTP on 127.0.0.1) it logs
``--points`` metric points to one run, several times, and prints the median wall time and the
number of DynamoDB requests (counted with botocore event hooks on every client created), next to
the same points written unbatched (a flush per point), measured in the same run.

    python bench/tracking_bench.py [--points 10000] [--repeats 3] [--baseline-points 10000]
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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracking import ExperimentLogger
from tracking.backends import build_stores
from tracking.config import load_config

REQUESTS: Counter[str] = Counter()


def _count(event_name: str, **_: Any) -> None:
    # event_name is "before-call.dynamodb.<Operation>"
    REQUESTS[event_name.rsplit(".", 1)[-1]] += 1


def install_request_counter() -> None:
    """Register the counter on every botocore client created from now on (pynamodb's too)."""
    import botocore.session

    original: Callable[..., Any] = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-call.dynamodb", _count)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def log_points(logger: ExperimentLogger, points: int, buffer_size: int) -> tuple[float, int]:
    """Log ``points`` points to a new run; return (seconds, DynamoDB requests)."""
    logger._buffer_size = buffer_size  # the same logger and stores, another buffer size
    REQUESTS.clear()
    started = time.perf_counter()
    with logger.start_run("bench") as run:
        for step in range(points):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    elapsed = time.perf_counter() - started
    stored = len(logger.get_metric_history(run.run_id, "loss"))
    if stored != points:
        raise SystemExit(f"lost points: stored {stored} of {points}")
    return elapsed, sum(REQUESTS.values())


def measure(label: str, tracking_uri: str, artifact_uri: str, args: argparse.Namespace) -> None:
    config = load_config(tracking_uri, artifact_uri)
    store, artifacts = build_stores(config)
    store.initialize()
    artifacts.initialize()
    logger = ExperimentLogger(metadata_store=store, artifact_store=artifacts)
    batched = [log_points(logger, args.points, 500) for _ in range(args.repeats)]
    single = [log_points(logger, args.baseline_points, 1) for _ in range(args.repeats)]
    batched_time = statistics.median(t for t, _ in batched)
    single_time = statistics.median(t for t, _ in single)
    # Scale the baseline to the same number of points when it was run on fewer.
    single_per_point = single_time / args.baseline_points
    batched_per_point = batched_time / args.points
    print(
        f"\n{label}: {args.points} points batched, {args.baseline_points} unbatched, "
        f"median of {args.repeats} runs"
    )
    print(
        f"  batched   : {batched_time:8.3f} s  {args.points / batched_time:10.0f} points/s  "
        f"DynamoDB requests={batched[0][1] or 'n/a'}"
    )
    print(
        f"  unbatched : {single_time:8.3f} s  {args.baseline_points / single_time:10.0f} points/s  "
        f"DynamoDB requests={single[0][1] or 'n/a'}"
    )
    print(f"  speed-up  : {single_per_point / batched_per_point:8.1f}x per point")
    if batched[0][1]:
        requests_ratio = (single[0][1] / args.baseline_points) / (batched[0][1] / args.points)
        print(f"  requests  : {requests_ratio:8.1f}x fewer per point")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--baseline-points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # moto's server logs every request through werkzeug; keep the figures readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    install_request_counter()
    with tempfile.TemporaryDirectory() as folder:
        measure("sqlite", f"sqlite:///{folder}/bench.db", f"file://{folder}/artifacts", args)
    with moto_server() as url:
        os.environ["AWS_ENDPOINT_URL"] = url
        measure("dynamodb (moto server, HTTP)", "dynamodb://bench", "s3://bench-bucket/a", args)


if __name__ == "__main__":
    main()
