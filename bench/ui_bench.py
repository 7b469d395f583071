"""Web UI speed on SQLite: the runs table at 10,000 runs and a run page with 20 x 100,000 points.

    .venv/bin/python bench/ui_bench.py                     # 10,000 runs; 20 metrics x 100,000
    .venv/bin/python bench/ui_bench.py --runs 2000 --points 20000 --repeats 3

Seeds a temporary SQLite store straight through ``SQLiteStore`` (``create_run``/``log_batch``,
1,000 points a batch), builds the app (``create_app``) and times requests in process
(Starlette's TestClient, a logged-in session): the server's time per request, median of
``--repeats``, and the bytes of each answer. Goals (issue 13): the runs page <= 300 ms, first page
and a later one reached by cursor; the run page <= 500 ms and <= 1 MB with its charts' data, on
its first (uncached) view.

The first view: the UI keeps downsampled series in an in-process ``HistoryCache``
(``functions/api/ui/histories.py``), which would answer every repeat after the first. So before
each timed first view the bench gives the app a new, empty ``HistoryCache`` (``app.state.ui``
replaced by a copy; the session stays valid), as a new server process would have, and the
charts are read from the store every time. SQLite's page cache and the OS's stay warm, as on a
running server.

The baseline, measured in the same run, is the JSON API for the same data: ``GET
/experiments/{name}/runs`` (same filter, order and page size) for the table, and ``GET
/runs/{id}`` + ``GET /metric-histories`` (1,000 points a series) for the run page. The ratio
says what rendering HTML costs on top of reading the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.api.main import create_app
from functions.api.settings import ApiSettings
from functions.api.ui.histories import HistoryCache
from tracking.entities import Metric
from tracking.stores.sqlite import SQLiteStore

EXPERIMENT = "bench"
KEY = "bench-admin-key"
FILTER = "metrics.auc > 0.7 and params.max_depth = '5'"
ORDER = "metrics.auc DESC"
METRICS = ("auc", "logloss", "accuracy", "precision", "recall")


def seed_runs(store: SQLiteStore, runs: int, rng: random.Random) -> str:
    experiment = store.get_or_create_experiment(EXPERIMENT)
    start = 1_700_000_000_000
    first = ""
    for index in range(runs):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        first = first or run_id
        store.create_run(
            experiment=experiment,
            run_id=run_id,
            run_name=f"run-{index}",
            tags={"team": rng.choice(["ds", "ml", "ops"])},
            parent_run_id=None,
            start_time=start + index * 1000,
        )
        store.log_batch(
            run_id,
            params={
                "max_depth": str(rng.randint(3, 8)),
                "eta": str(rng.choice([0.05, 0.1])),
                "model": rng.choice(["xgb", "lgbm"]),
            },
            metrics=[
                Metric(key=key, value=round(rng.random(), 4), step=0, timestamp=start)
                for key in METRICS
            ],
        )
    return first


def seed_history(store: SQLiteStore, keys: int, points: int) -> str:
    experiment = store.get_or_create_experiment("history")
    run_id = uuid.uuid4().hex
    store.create_run(
        experiment=experiment,
        run_id=run_id,
        run_name="long",
        tags={},
        parent_run_id=None,
        start_time=1_700_000_000_000,
    )
    for index in range(keys):
        key = f"metric_{index:02d}"
        for begin in range(0, points, 1000):
            batch = [
                Metric(
                    key=key,
                    value=((step * 7919) % 1000) / 1000 + index,
                    step=step,
                    timestamp=1_700_000_000_000 + step,
                )
                for step in range(begin, min(begin + 1000, points))
            ]
            store.log_batch(run_id, metrics=batch)
    return run_id


def seed_wide(store: SQLiteStore, runs: int, keys: int) -> None:
    """Runs with ``keys`` distinct metric keys each (a table that must not grow 1,000 columns)."""
    experiment = store.get_or_create_experiment("wide")
    for index in range(runs):
        run_id = uuid.uuid4().hex
        store.create_run(
            experiment=experiment,
            run_id=run_id,
            run_name=f"wide-{index}",
            tags={},
            parent_run_id=None,
            start_time=1_700_000_000_000 + index,
        )
        metrics = [
            Metric(key=f"m{key:04d}", value=key / keys, step=0, timestamp=0) for key in range(keys)
        ]
        for begin in range(0, keys, 1000):
            store.log_batch(run_id, metrics=metrics[begin : begin + 1000])


def measure(call: Callable[[], bytes], repeats: int) -> tuple[float, int]:
    """(median ms, bytes of the answer)."""
    times, size = [], 0
    call()  # warm: templates compiled, SQLite pages cached, as on a running server
    for _ in range(repeats):
        began = time.perf_counter()
        size = len(call())
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--wide-runs", type=int, default=200, help="runs with --wide-keys keys")
    parser.add_argument("--wide-keys", type=int, default=1000)
    parser.add_argument("--later-page", type=int, default=10, help="which page to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ui-bench-") as folder:
        root = Path(folder)
        began = time.perf_counter()
        store = SQLiteStore(root / "tracking.db")
        store.initialize()
        seed_runs(store, args.runs, random.Random(7))
        run_id = seed_history(store, args.keys, args.points)
        seed_wide(store, args.wide_runs, args.wide_keys)
        store.close()
        seeded = time.perf_counter() - began
        print(f"seeded {args.runs} runs and {args.keys} x {args.points} points in {seeded:.0f} s")

        keys = [
            {
                "name": "bench",
                "scopes": ["read", "admin"],
                "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
            }
        ]
        settings = ApiSettings(
            TRACKING_URI=f"sqlite:///{root / 'tracking.db'}",
            ARTIFACT_URI=f"file://{root / 'artifacts'}",
            API_KEYS=json.dumps(keys),
            LOAD_MODELS_ON_START=False,
            MODEL_CACHE_DIR=str(root / "cache"),
        )
        client = TestClient(create_app(settings), follow_redirects=False)
        form = client.get("/ui/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        client.post("/ui/login", data={"api_key": KEY, "csrf_token": token.group(1)})
        api = {"X-API-Key": KEY}

        def get(path: str, **kwargs: object) -> Callable[[], bytes]:
            def call() -> bytes:
                answer = client.get(path, **kwargs)  # type: ignore[arg-type]
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
                return answer.content

            return call

        table = f"/ui/experiments/{EXPERIMENT}"
        query = {
            "filter": FILTER,
            "order_by": ORDER,
            "columns": "metrics.auc,metrics.logloss,params.max_depth,params.model",
        }
        api_query = {"filter": FILTER, "order_by": ORDER, "max_results": 50}
        # A later page: follow the UI's own "Next page" links (the cursor), then time that page.
        # (Ordered by auc without the filter, so that 10,000 runs make 200 pages.)
        later = {"order_by": ORDER, "columns": query["columns"]}
        api_later: dict[str, object] = {"order_by": ORDER, "max_results": 50}
        for _ in range(args.later_page - 1):
            page = client.get(table, params=later).text
            found = re.search(r'class="next" href="\?([^"]+)"', page)
            assert found is not None, "fewer pages than --later-page"
            token_value = re.search(r"page_token=([^&]+)", found.group(1).replace("&amp;", "&"))
            assert token_value is not None
            later["page_token"] = unquote(token_value.group(1))
            api_page = client.get(f"/experiments/{EXPERIMENT}/runs", params=api_later, headers=api)
            api_later["page_token"] = api_page.json()["next_token"]

        rows: list[tuple[str, tuple[float, int], tuple[float, int], str]] = []
        rows.append(
            (
                "runs page 1 (no filter)",
                measure(get(table), args.repeats),
                measure(
                    get(f"/experiments/{EXPERIMENT}/runs", params={"max_results": 50}, headers=api),
                    args.repeats,
                ),
                "300 ms",
            )
        )
        rows.append(
            (
                "runs page 1 (filter+order)",
                measure(get(table, params=query), args.repeats),
                measure(
                    get(f"/experiments/{EXPERIMENT}/runs", params=api_query, headers=api),
                    args.repeats,
                ),
                "300 ms",
            )
        )
        rows.append(
            (
                f"runs page {args.later_page} (order, cursor)",
                measure(get(table, params=later), args.repeats),
                measure(
                    get(f"/experiments/{EXPERIMENT}/runs", params=api_later, headers=api),
                    args.repeats,
                ),
                "300 ms",
            )
        )
        rows.append(
            (
                f"runs page, {args.wide_keys:,} metric keys a run",
                measure(get("/ui/experiments/wide"), args.repeats),
                measure(
                    get("/experiments/wide/runs", params={"max_results": 50}, headers=api),
                    args.repeats,
                ),
                "300 ms",
            )
        )
        # The run counts of the experiments list: the store has no count, the UI pages through.
        summaries = "/ui/experiment-summaries?names=" + EXPERIMENT
        began = time.perf_counter()
        get(summaries)()
        count_ms = (time.perf_counter() - began) * 1000
        rows.append(
            (
                f"experiment summary ({args.runs:,} runs counted)",
                (count_ms, len(get(summaries)())),
                measure(get("/experiments", headers=api), args.repeats),
                "(htmx, after the page)",
            )
        )
        chart_keys = ",".join(f"metric_{i:02d}" for i in range(args.keys))
        histories_url = f"/ui/histories?runs={run_id}&keys={chart_keys}"
        app = cast(FastAPI, client.app)
        charts = get(histories_url)

        def first_view_charts() -> bytes:
            # An empty cache, as in a new process: every series is read from the store. Not
            # timed apart, it is one dataclass copy and an empty OrderedDict.
            app.state.ui = dataclasses.replace(app.state.ui, histories=HistoryCache())
            return charts()

        page_ms, page_bytes = measure(get(f"/ui/runs/{run_id}"), args.repeats)
        cold_ms, cold_bytes = measure(first_view_charts, args.repeats)
        hist_ms, hist_bytes = measure(charts, args.repeats)  # the cache of the last first view
        api_run = measure(get(f"/runs/{run_id}", headers=api), args.repeats)
        api_hist = measure(
            get(f"/metric-histories?runs={run_id}&keys={chart_keys}&max_points=1000", headers=api),
            args.repeats,  # the JSON API has no cache: each reads the store
        )
        rows.append(("run page HTML", (page_ms, page_bytes), api_run, ""))
        rows.append(
            (
                f"run page charts ({args.keys} x {args.points:,} pts)",
                (hist_ms, hist_bytes),
                api_hist,
                "",
            )
        )
        rows.append(("run page charts, first view", (cold_ms, cold_bytes), api_hist, ""))
        api_total = (api_run[0] + api_hist[0], api_run[1] + api_hist[1])
        rows.append(
            (
                "run page total, first view",
                (page_ms + cold_ms, page_bytes + cold_bytes),
                api_total,
                "500 ms, 1 MB",
            )
        )
        rows.append(
            (
                "run page total (charts cached)",
                (page_ms + hist_ms, page_bytes + hist_bytes),
                api_total,
                "",
            )
        )

        print(
            f"\n{'request':<40} {'UI ms':>9} {'UI bytes':>10} {'API ms':>9} {'API bytes':>10}"
            f" {'UI/API':>7}  goal"
        )
        for name, (ui_ms, ui_bytes), (api_ms, api_bytes), goal in rows:
            ratio = ui_ms / api_ms if api_ms else float("nan")
            print(
                f"{name:<40} {ui_ms:>9.1f} {ui_bytes:>10,} {api_ms:>9.1f} {api_bytes:>10,}"
                f" {ratio:>7.2f}  {goal}"
            )
        print(
            f"\nmedian of {args.repeats} requests each, in process (TestClient), SQLite, "
            "baseline = the JSON API for the same data\n"
            "first view: the UI's HistoryCache emptied (a new one on app.state.ui) before each "
            "request, so the charts are read from the store every time; SQLite's page cache warm"
        )


if __name__ == "__main__":
    main()
