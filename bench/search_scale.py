"""Search at scale: this tree against the previous release, in the same run, on both backends.

    .venv/bin/python bench/search_scale.py                   # 1,000 / 5,000 / 10,000 runs
    .venv/bin/python bench/search_scale.py --sizes 1000,5000 --repeats 3

Each run has 5 params, 5 metrics and 2 tags. The search is the issue's:
``metrics.auc > 0.7 and params.max_depth = '5'`` ordered by ``metrics.auc DESC``, pages of 50,
page 1 and page 2 (median of ``--repeats``). SQLite: seconds per page. DynamoDB (a real moto
server on 127.0.0.1): requests and bytes read per page, counted with a botocore ``after-call``
hook on the store's clients, split into the listing Queries and per-run requests. Writes: runs/s
and metric points/s on both backends.

The baseline is the previous release (``--baseline``, a git revision, checked out into a
temporary worktree). Both sides run the same worker (this file, ``--worker``) through the public
SDK only, with ``PYTHONPATH`` pointing at their tree. The baseline's DynamoDB search reads one
partition per run per page, so it stops at ``--baseline-dynamodb-max`` runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FILTER = "metrics.auc > 0.7 and params.max_depth = '5'"
ORDER = ["metrics.auc DESC"]
PAGE = 50


# -- worker: runs inside one code tree -----------------------------------------------------------


class Counter:
    """DynamoDB requests and response bytes (botocore ``before-call`` / ``after-call``).

    A Query with ``IndexName`` is a listing of ``gsi1``; any other request but the experiment's
    GetItem is a request for one run (its partition, its item).
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.bytes = 0

    def before(self, model: Any = None, params: Any = None, **_: Any) -> None:
        # before-parameter-build: ``params`` are the API's (IndexName...), not the HTTP body.
        listing = model.name == "Query" and "IndexName" in (params or {})
        self.calls.append("listing" if listing else model.name)

    def after(self, http_response: Any = None, **_: Any) -> None:
        self.bytes += len(http_response.content) if http_response is not None else 0

    def attach(self, store: Any) -> None:
        for model in (store._models.TrackingItem, store._models.MetricPoint):
            events = model._get_connection().connection.client.meta.events
            events.register("before-parameter-build.dynamodb", self.before)
            events.register("after-call.dynamodb", self.after)

    def take(self) -> tuple[list[str], int]:
        calls, size = self.calls, self.bytes
        self.calls, self.bytes = [], 0
        return calls, size


def _write_runs(logger: Any, start: int, count: int, rng: random.Random) -> float:
    began = time.perf_counter()
    for index in range(start, start + count):
        with logger.start_run(experiment="scale", run_name=f"run-{index}") as run:
            run.log_params(
                {
                    "max_depth": str(rng.randint(3, 8)),
                    "learning_rate": f"{rng.choice([0.01, 0.05, 0.1, 0.3])}",
                    "n_estimators": str(rng.choice([100, 200, 400])),
                    "subsample": f"{rng.choice([0.6, 0.8, 1.0])}",
                    "seed": str(index),
                }
            )
            run.set_tags({"team": rng.choice(["ds", "ml"]), "git": f"{index:08x}"})
            run.log_metrics(
                {
                    "auc": rng.uniform(0.5, 0.95),
                    "logloss": rng.uniform(0.2, 0.7),
                    "precision": rng.random(),
                    "recall": rng.random(),
                    "f1": rng.random(),
                }
            )
    return time.perf_counter() - began


def _write_points(logger: Any, points: int) -> float:
    with logger.start_run(experiment="points") as run:
        began = time.perf_counter()
        keys = 5
        for step in range(points // keys):
            run.log_metrics({f"m{k}": step * 0.001 + k for k in range(keys)}, step=step)
        run.flush()
        return time.perf_counter() - began


def worker(args: argparse.Namespace) -> None:
    from tracking import ExperimentLogger

    logger = ExperimentLogger()
    counter = Counter()
    dynamodb = os.environ["TRACKING_URI"].startswith("dynamodb://")
    if dynamodb:
        logger.metadata.initialize()
        counter.attach(logger.metadata)
    rng = random.Random(7)
    results: dict[str, Any] = {"sizes": {}}
    written = 0
    write_seconds = 0.0
    for size in args.sizes:
        write_seconds += _write_runs(logger, written, size - written, rng)
        written = size
        counter.take()
        page1: list[float] = []
        page2: list[float] = []
        requests: dict[str, tuple[list[str], int]] = {}
        for _ in range(args.repeats):
            began = time.perf_counter()
            first = logger.search_runs("scale", filter=FILTER, order_by=ORDER, max_results=PAGE)
            page1.append(time.perf_counter() - began)
            requests["page1"] = counter.take()
            began = time.perf_counter()
            logger.search_runs(
                "scale", filter=FILTER, order_by=ORDER, max_results=PAGE,
                page_token=first.next_token,
            )  # fmt: skip
            page2.append(time.perf_counter() - began)
            requests["page2"] = counter.take()
        entry: dict[str, Any] = {
            "page1_s": statistics.median(page1),
            "page2_s": statistics.median(page2),
            "matches_page1": len(first.items),
        }
        if dynamodb:
            for page, (calls, read) in requests.items():
                entry[f"{page}_requests"] = len(calls)
                entry[f"{page}_bytes"] = read
                # Less the experiment's GetItem: what is left was sent for single runs.
                entry[f"{page}_per_run"] = sum(1 for name in calls if name != "listing") - 1
        results["sizes"][size] = entry
    results["runs_per_s"] = written / write_seconds
    results["points_per_s"] = args.points / _write_points(logger, args.points)
    print(json.dumps(results))


# -- driver -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_worker(
    tree: Path, env: dict[str, str], sizes: list[int], args: argparse.Namespace, repeats: int
) -> Any:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker",
        "--sizes", ",".join(map(str, sizes)), "--repeats", str(repeats),
        "--points", str(args.points),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        env={**os.environ, **env, "PYTHONPATH": str(tree)},
        cwd=tempfile.mkdtemp(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"worker failed in {tree} (rc {done.returncode}):\n{done.stderr[-3000:]}",
              file=sys.stderr, flush=True)  # fmt: skip
        raise SystemExit(1)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cheap_moto_transactions() -> None:
    """Let the moto server's TransactWriteItems cost what DynamoDB's does, not O(table).

    moto deep-copies the whole table once per item of every transaction, to restore it if the
    transaction is cancelled; at 10,000 runs that is seconds per write and botocore's read
    timeout. No transaction of this benchmark is cancelled (no param conflicts, no summary near
    its budget), so the copy is skipped for tables; every other deep copy is moto's own.
    """
    import copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models.table import Table

    class _TableCopy:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    dynamodb_models.copy = _TableCopy  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument(
        "--baseline", default="9cdbb25", help="git revision of the previous release"
    )
    parser.add_argument("--baseline-dynamodb-max", type=int, default=1000)
    # The baseline reads one partition per run per page; moto answers each by walking the
    # table, so its repeats only cost time (its request counts do not vary).
    parser.add_argument("--baseline-dynamodb-repeats", type=int, default=1)
    parser.add_argument("--backends", default="sqlite,dynamodb")
    # moto's server writes ~10 runs/s on this machine: 10,000 runs would take most of an hour.
    parser.add_argument("--dynamodb-sizes", default="1000,2000")
    args = parser.parse_args()
    args.sizes = [int(size) for size in str(args.sizes).split(",")]
    if args.worker:
        worker(args)
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    _cheap_moto_transactions()
    scratch = Path(tempfile.mkdtemp(prefix="search-scale-"))
    baseline = scratch / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline],
        check=True, capture_output=True,
    )  # fmt: skip
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    aws = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    }  # fmt: skip
    table: dict[tuple[str, str], Any] = {}
    try:
        for label, tree in (("baseline", baseline), ("this tree", ROOT)):
            for backend in args.backends.split(","):
                sizes = args.sizes
                if backend == "sqlite":
                    env = {
                        "TRACKING_URI": f"sqlite:///{scratch / label.replace(' ', '_')}.db",
                        "ARTIFACT_URI": f"file://{scratch / 'artifacts'}",
                    }
                else:
                    sizes = [int(size) for size in str(args.dynamodb_sizes).split(",")]
                    if label == "baseline":
                        sizes = [s for s in sizes if s <= args.baseline_dynamodb_max]
                    prefix = f"scale-{label.replace(' ', '')}"
                    env = {**aws, "TRACKING_URI": f"dynamodb://{prefix}",
                           "ARTIFACT_URI": f"s3://{prefix}/a"}  # fmt: skip
                if not sizes:
                    continue
                print(f"{label} / {backend}: {sizes} ...", file=sys.stderr, flush=True)
                repeats = args.repeats
                if backend == "dynamodb" and label == "baseline":
                    repeats = args.baseline_dynamodb_repeats
                table[(label, backend)] = _run_worker(tree, env, sizes, args, repeats)
                print(json.dumps({f"{label} / {backend}": table[(label, backend)]}), flush=True)
    finally:
        server.stop()
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)],
            check=False, capture_output=True,
        )  # fmt: skip
    _report(table, args)


def _report(table: dict[tuple[str, str], Any], args: argparse.Namespace) -> None:
    print(f"\nsearch {FILTER!r} order by {ORDER[0]}, pages of {PAGE}, median of {args.repeats}")
    print(
        "\n| code | backend | runs | page 1 | page 2 | requests p1/p2 | KB read p1/p2 "
        "| per-run requests |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (label, backend), result in table.items():
        for size, entry in result["sizes"].items():
            line = f"| {label} | {backend} | {int(size):,} | {entry['page1_s'] * 1000:.1f} ms | "
            line += f"{entry['page2_s'] * 1000:.1f} ms | "
            if backend == "dynamodb":
                line += f"{entry['page1_requests']} / {entry['page2_requests']} | "
                line += f"{entry['page1_bytes'] / 1024:.0f} / {entry['page2_bytes'] / 1024:.0f} | "
                line += f"{entry['page1_per_run']} / {entry['page2_per_run']} |"
            else:
                line += "- | - | - |"
            print(line)
    print("\n| code | backend | runs/s | points/s |")
    print("|---|---|---|---|")
    for (label, backend), result in table.items():
        print(
            f"| {label} | {backend} | {result['runs_per_s']:.0f} | {result['points_per_s']:.0f} |"
        )
    for backend in ("sqlite", "dynamodb"):
        old, new = table.get(("baseline", backend)), table.get(("this tree", backend))
        if old and new:
            print(
                f"{backend}: writes {new['runs_per_s'] / old['runs_per_s']:.2f}x runs/s, "
                f"{new['points_per_s'] / old['points_per_s']:.2f}x points/s of the baseline"
            )


if __name__ == "__main__":
    main()
