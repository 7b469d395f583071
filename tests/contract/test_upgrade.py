"""``tracking init`` upgrades a DynamoDB store written by the previous release.

Runs in the previous layout (``tests/legacy_release.py``) are readable and writable before the
upgrade; the upgrade gives each its summary, resumes after a failure half way, and loses
nothing; afterwards listing makes no per-run request.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.contract.conftest import Backend
from tests.legacy_release import write_legacy_run
from tracking import ExperimentLogger
from tracking.downsample import downsample, metrics_of_rows
from tracking.entities import Metric
from tracking.errors import StoreUnavailable
from tracking.run_query import parse_query
from tracking.stores.dynamodb import DynamoDBStore
from tracking.stores.dynamodb.schema import tracking_table_name
from tracking.stores.sqlite import SQLiteStore
from tracking.stores.sqlite.blocks import METRIC_BLOCKS_SCHEMA
from tracking.stores.sqlite.schema import SCHEMA, SCHEMA_VERSION
from tracking.stores.sqlite.search import SEARCH_INDEXES

TRAIN = {"uri": "s3://b/t.csv", "digest": "ab", "digest_algorithm": "md5", "logged_at": 3}
DYNAMODB = pytest.mark.parametrize("backend", ["moto", "moto_server"], indirect=True)


def _legacy_experiment(store: DynamoDBStore, runs: int = 5) -> None:
    experiment = store.get_or_create_experiment("old")
    for index in range(runs):
        write_legacy_run(
            tracking_table_name(store.table_prefix),
            experiment_id=experiment.experiment_id,
            experiment_name="old",
            run_id=f"old{index}",
            start_time=1_000 + index,
            params={"max_depth": str(index), "lr": "0.1"},
            tags={"team": "ds"},
            metrics={"auc": (0.5 + index / 10, 9, 5), "loss": (1.0 / (index + 1), 9, 5)},
            datasets={"train": TRAIN},
            artifacts={"model": {"uri": "s3://b/m", "sha256": "ff", "size": 4, "created_at": 4}},
        )


def _state(store: DynamoDBStore) -> list[Any]:
    return sorted(store.iter_runs("old"), key=lambda run: run.run_id)


@pytest.fixture
def legacy(backend: Backend) -> DynamoDBStore:
    store = backend.metadata
    assert isinstance(store, DynamoDBStore)
    _legacy_experiment(store)
    return store


@DYNAMODB
def test_legacy_runs_read_and_write_before_the_upgrade(
    backend: Backend, legacy: DynamoDBStore
) -> None:
    run = legacy.get_run("old3")
    assert run.params == {"max_depth": "3", "lr": "0.1"}
    assert run.metrics["auc"].value == pytest.approx(0.8)
    assert set(run.datasets) == {"train"}
    assert set(run.artifacts) == {"model"}
    legacy.log_batch(
        "old3",
        params={"new": "1"},
        tags={"team": "ml"},
        metrics=[Metric(key="auc", value=0.95, step=10, timestamp=6)],
    )
    legacy.log_batch("old3", metrics=[Metric(key="auc", value=0.1, step=2, timestamp=7)])
    run = legacy.get_run("old3")
    assert run.params["new"] == "1"
    assert run.tags["team"] == "ml"
    assert run.metrics["auc"].value == 0.95  # the older point never replaces the latest
    logger = ExperimentLogger(metadata_store=legacy, artifact_store=backend.artifacts)
    found = logger.search_runs("old", filter="metrics.auc > 0.75", order_by=["metrics.auc DESC"])
    assert [run.run_id for run in found.items] == ["old3", "old4"]


@DYNAMODB
def test_upgrade_resumes_after_a_failure_and_loses_nothing(
    legacy: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy.log_batch("old1", metrics=[Metric(key="auc", value=0.95, step=20, timestamp=9)])
    before = _state(legacy)
    original = DynamoDBStore._upgrade_run
    done: list[str] = []

    def failing(self: DynamoDBStore, run_id: str) -> bool:
        if len(done) == 2:
            raise StoreUnavailable("DynamoDB throttled upgrade run summaries after retries")
        done.append(run_id)
        return original(self, run_id)

    monkeypatch.setattr(DynamoDBStore, "_upgrade_run", failing)
    with pytest.raises(StoreUnavailable):
        legacy.initialize()
    assert _state(legacy) == before  # half upgraded: every run still reads the same
    monkeypatch.setattr(DynamoDBStore, "_upgrade_run", original)
    assert legacy.upgrade_run_summaries() == 3  # the two done are skipped
    assert legacy.upgrade_run_summaries() == 0  # idempotent
    legacy.initialize()
    assert _state(legacy) == before


@DYNAMODB
def test_after_the_upgrade_summaries_are_kept_and_read(legacy: DynamoDBStore) -> None:
    legacy.initialize()
    legacy.log_batch(
        "old2", tags={"late": "x"}, metrics=[Metric(key="auc", value=0.99, step=50, timestamp=9)]
    )
    operations: list[str] = []

    def record(model: Any, **kwargs: Any) -> None:
        operations.append(model.name)

    client = legacy._connection().client
    client.meta.events.register("before-call.dynamodb", record)
    try:
        runs = {run.run_id: run for run in legacy.iter_runs("old")}
    finally:
        client.meta.events.unregister("before-call.dynamodb", record)
    assert runs["old2"].tags["late"] == "x"
    assert runs["old2"].metrics["auc"].value == 0.99
    # One GetItem for the experiment, one gsi1 Query: no per-run request once summarised.
    assert operations == ["GetItem", "Query"]


def test_a_sqlite_file_of_the_previous_release_gets_the_search_indexes(tmp_path: Path) -> None:
    """The previous release's schema is this one without the search indexes."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA.replace(SEARCH_INDEXES, ""))
        conn.execute("INSERT INTO experiments VALUES ('e1', 'old', 1, '{}')")
        conn.execute(
            "INSERT INTO runs (run_id, experiment_id, status, start_time) "
            "VALUES ('r1', 'e1', 'FINISHED', 5)"
        )
        conn.execute("INSERT INTO params VALUES ('r1', 'max_depth', '5')")
        conn.execute("INSERT INTO latest_metrics VALUES ('r1', 'auc', 3, 0.9, 7)")
    store = SQLiteStore(path)
    store.initialize()
    with sqlite3.connect(path) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "latest_metrics_by_key_value" in indexes
    found = store.search_runs(
        "old", parse_query("metrics.auc > 0.7 and params.max_depth = '5'", ["metrics.auc DESC"])
    )
    assert [run.run_id for run in found.items] == ["r1"]
    assert found.items[0].metrics["auc"].step == 3
    store.close()


def _version_1_file(path: Path, points: dict[str, list[tuple[int, float, int]]]) -> None:
    """A file of the release before ``metric_blocks``: its schema without the table, points
    written straight into ``metric_points``, no ``schema_version`` row; in WAL mode, as every
    release's store leaves its file."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA.replace(METRIC_BLOCKS_SCHEMA, ""))
        conn.execute("INSERT INTO experiments VALUES ('e1', 'old', 1, '{}')")
        conn.execute(
            "INSERT INTO runs (run_id, experiment_id, status, start_time) "
            "VALUES ('r1', 'e1', 'FINISHED', 5)"
        )
        conn.executemany(
            "INSERT INTO metric_points VALUES ('r1', ?, ?, ?, ?)",
            [(key, *row) for key, rows in points.items() for row in rows],
        )
    conn.close()


def _old_points() -> dict[str, list[tuple[int, float, int]]]:
    return {
        "loss": [(s, float((s * 7919) % 1009), s) for s in range(20_000)],
        "auc": [(s * 1000, float(s % 7), s) for s in range(300)],
        "flat": [(s, 0.25, s) for s in range(3000)],
    }


def test_a_sqlite_file_before_metric_blocks_is_backfilled_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    points = _old_points()
    _version_1_file(path, points)
    store = SQLiteStore(path)
    store.initialize()
    for key, rows in points.items():
        full = metrics_of_rows(key, rows)
        assert list(store.iter_metric_history("r1", key)) == full
        for max_points in (2, 50, 1000):
            assert store.get_downsampled_history("r1", key, max_points) == downsample(
                full, max_points
            ), (key, max_points)
    with store.db.read() as conn:
        assert [tuple(row) for row in conn.execute("SELECT version FROM schema_version")] == [
            (SCHEMA_VERSION,)
        ]
        blocks = conn.execute("SELECT * FROM metric_blocks ORDER BY key, block").fetchall()
    assert len(blocks) == 20_000 // 16 + 300 + 3000 // 16 + 1
    store.close()
    # Opened again (and after this release wrote to it): nothing is rebuilt.
    again = SQLiteStore(path)
    again.log_batch("r1", metrics=[Metric(key="loss", value=-1.0, step=20_005, timestamp=9)])
    with again.db.read() as conn:
        block = conn.execute(
            "SELECT count, min_step, min_value FROM metric_blocks "
            "WHERE run_id = 'r1' AND key = 'loss' AND block = 1250"
        ).fetchone()
    assert tuple(block) == (1, 20_005, -1.0)
    again.close()


def test_two_stores_opening_an_old_file_at_once_backfill_it_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    points = _old_points()
    _version_1_file(path, points)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    stores = [SQLiteStore(path), SQLiteStore(path)]

    def open_store(store: SQLiteStore) -> None:
        try:
            barrier.wait()
            store.initialize()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=open_store, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    full = metrics_of_rows("loss", points["loss"])
    for store in stores:
        assert store.get_downsampled_history("r1", "loss", 1000) == downsample(full, 1000)
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (1,)
        assert conn.execute("SELECT SUM(count) FROM metric_blocks").fetchone() == (23_300,)
    conn.close()


def test_a_failed_backfill_leaves_the_old_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracking.stores.sqlite import schema

    path = tmp_path / "old.db"
    _version_1_file(path, _old_points())

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO metric_blocks SELECT * FROM metric_blocks_missing")

    monkeypatch.setattr(schema, "backfill_blocks", broken)
    with pytest.raises(StoreUnavailable, match="schema"):
        SQLiteStore(path).initialize()
    monkeypatch.undo()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM metric_blocks").fetchone() == (0,)
    conn.close()
    store = SQLiteStore(path)  # the next open upgrades it
    full = metrics_of_rows("auc", _old_points()["auc"])
    assert store.get_downsampled_history("r1", "auc", 40) == downsample(full, 40)
    store.close()
