"""Search speed on SQLite: the SQL search (``tracking.stores.sqlite.search``) against today's
Python path (``ExperimentLogger.search_runs``: read every run, filter and sort in Python).

For each size it writes that many runs through ``SQLiteStore`` (5 params incl.
``max_depth`` in '3'..'8', 5 metrics incl. ``auc``, 2 tags) into a temporary file, then times
page 1 and page 2 of ``metrics.auc > 0.7 and params.max_depth = '5'`` ordered by
``metrics.auc DESC``, 50 a page, and prints the median of ``--repeats`` runs in milliseconds.
The SQL figure includes building the page's runs (``load_runs``). The Python baseline is timed
on page 1 and page 2 (page 2 reads everything again).

    python bench/search_sqlite.py [--sizes 1000 5000 10000] [--repeats 5] [--no-indexes]
        [--plan] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracking import ExperimentLogger
from tracking.artifacts.local import LocalArtifactStore
from tracking.entities import Metric
from tracking.search import parse_filter, parse_order_by
from tracking.stores.sqlite import SQLiteStore
from tracking.stores.sqlite import search as sqlite_search

FILTER = "metrics.auc > 0.7 and params.max_depth = '5'"
ORDER_BY = ["metrics.auc DESC"]
PAGE = 50
EXPERIMENT = "bench"


def populate(store: SQLiteStore, runs: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    experiment = store.get_or_create_experiment(EXPERIMENT)
    start = 1_700_000_000_000
    for index in range(runs):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        store.create_run(
            experiment=experiment,
            run_id=run_id,
            run_name=f"run-{index}",
            tags={"team": rng.choice(["ds", "ml", "ops"]), "stage": rng.choice(["dev", "prod"])},
            parent_run_id=None,
            start_time=start + index * 1000,
        )
        store.log_batch(
            run_id,
            params={
                "max_depth": str(rng.randint(3, 8)),
                "eta": str(rng.choice([0.01, 0.05, 0.1, 0.3])),
                "n_estimators": str(rng.choice([100, 200, 400])),
                "subsample": str(rng.choice([0.5, 0.8, 1.0])),
                "model": rng.choice(["xgb", "lgbm", "rf"]),
            },
            metrics=[
                Metric(key=key, value=round(rng.random(), 4), step=0, timestamp=start)
                for key in ("auc", "logloss", "accuracy", "precision", "recall")
            ],
        )


def median_ms(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def bench(size: int, repeats: int, folder: Path, indexes: bool, plan: bool) -> None:
    path = folder / f"search-{size}.db"
    fresh = not path.exists()
    store = SQLiteStore(path)
    if fresh:
        began = time.perf_counter()
        populate(store, size)
        print(f"{size:>6} runs written in {time.perf_counter() - began:.1f} s")
    conn = store.db.connection()
    if indexes:
        conn.executescript(sqlite_search.SEARCH_INDEXES)
    else:
        for name in ("latest_metrics_by_key_value", "params_by_key_value", "tags_by_key_value"):
            conn.execute(f"DROP INDEX IF EXISTS {name}")
    conn.execute("ANALYZE")
    sqlite_search.register_functions(conn)
    experiment = store.get_experiment(EXPERIMENT)
    predicate = parse_filter(FILTER)
    order = parse_order_by(ORDER_BY)
    fingerprint = sqlite_search.search_fingerprint(
        experiment_id=experiment.experiment_id, filter_text=FILTER, order_by=ORDER_BY
    )

    def sql_page(token: str | None) -> sqlite_search.SearchPage:
        with store.db.read() as read:
            page = sqlite_search.search_runs(
                read,
                experiment_id=experiment.experiment_id,
                experiment_name=EXPERIMENT,
                predicate=predicate,
                order=order,
                max_results=PAGE,
                page_token=token,
                fingerprint=fingerprint,
            )
            sqlite_search.load_runs(read, page.rows)
        return page

    first = sql_page(None)
    second_token = first.next_token
    if second_token is None:
        print(f"{size:>6} runs: fewer than {PAGE + 1} matches, no page 2 to time")
        store.close()
        return
    if plan:
        for label, after in (("page 1", None), ("page 2", second_token)):
            cursor = (
                None
                if after is None
                else sqlite_search.decode_page_token(after, order=order, fingerprint=fingerprint)
            )
            query, args = sqlite_search.compile_search(
                experiment_id=experiment.experiment_id,
                predicate=predicate,
                order=order,
                limit=PAGE,
                after=cursor,
            )
            print(f"  plan, {label}:")
            for row in conn.execute("EXPLAIN QUERY PLAN " + query, args):
                print("   ", row[3])
    sql_1 = median_ms(lambda: sql_page(None), repeats)
    sql_2 = median_ms(lambda: sql_page(second_token), repeats)

    logger = ExperimentLogger(
        metadata_store=store, artifact_store=LocalArtifactStore(folder / "artifacts")
    )
    python_first = logger.search_runs(
        EXPERIMENT, filter=FILTER, order_by=ORDER_BY, max_results=PAGE
    )
    # The two paths must agree before their times mean anything.
    assert [r.run_id for r in python_first.items] == [row["run_id"] for row in first.rows]
    py_1 = median_ms(
        lambda: logger.search_runs(EXPERIMENT, filter=FILTER, order_by=ORDER_BY, max_results=PAGE),
        repeats,
    )
    py_2 = median_ms(
        lambda: logger.search_runs(
            EXPERIMENT,
            filter=FILTER,
            order_by=ORDER_BY,
            max_results=PAGE,
            page_token=python_first.next_token,
        ),
        repeats,
    )
    print(
        f"{size:>6} runs  SQL page 1 {sql_1:7.2f} ms  page 2 {sql_2:7.2f} ms   "
        f"Python page 1 {py_1:8.1f} ms  page 2 {py_2:8.1f} ms   "
        f"(indexes {'on' if indexes else 'off'})"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-indexes", action="store_true", help="drop SEARCH_INDEXES")
    parser.add_argument("--plan", action="store_true", help="print EXPLAIN QUERY PLAN")
    parser.add_argument("--keep", type=Path, help="reuse/keep the databases in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            bench(size, args.repeats, folder, not args.no_indexes, args.plan)


if __name__ == "__main__":
    main()
