"""Experiments, runs, params, tags, metrics, datasets and artifact records in SQLite."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence

from tracking.clock import now_ms
from tracking.downsample import check_max_points, metrics_of_rows
from tracking.entities import Artifact, Dataset, Experiment, Metric, Page, RunRecord, RunStatus
from tracking.errors import AlreadyExists, Conflict, NotFound
from tracking.run_query import RunQuery
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MetadataStore
from tracking.stores.sqlite import blocks, search
from tracking.stores.sqlite.database import SQLiteDatabase


class SQLiteMetadata(MetadataStore):
    """The ``MetadataStore`` port on the tables of ``schema.py``; ``self.db`` is the store's."""

    db: SQLiteDatabase

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> Experiment:
        experiment = Experiment(
            experiment_id=uuid.uuid4().hex, name=name, created_at=now_ms(), tags=dict(tags or {})
        )
        try:
            with self.db.write() as conn:
                conn.execute(
                    "INSERT INTO experiments (experiment_id, name, created_at, tags) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        experiment.experiment_id,
                        name,
                        experiment.created_at,
                        json.dumps(experiment.tags),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"experiment {name!r} already exists") from exc
        return experiment

    def get_experiment(self, name: str) -> Experiment:
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"experiment {name!r} not found")
        return _experiment(row)

    def list_experiments(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[Experiment]:
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        after = decode_token(page_token, ("after",))["after"] if page_token else ""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM experiments WHERE name > ? ORDER BY name LIMIT ?", (after, limit + 1)
            ).fetchall()
        items = [_experiment(row) for row in rows[:limit]]
        token = encode_token({"after": items[-1].name}) if len(rows) > limit else None
        return Page[Experiment](items=items, next_token=token)

    # -- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        experiment: Experiment,
        run_id: str,
        run_name: str | None,
        tags: Mapping[str, str],
        parent_run_id: str | None,
        start_time: int,
    ) -> RunRecord:
        with self.db.write() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise AlreadyExists(f"run {run_id!r} already exists")
            if (
                parent_run_id is not None
                and not conn.execute(
                    "SELECT 1 FROM runs WHERE run_id = ?", (parent_run_id,)
                ).fetchone()
            ):
                raise NotFound(f"parent run {parent_run_id!r} not found")
            if not conn.execute(
                "SELECT 1 FROM experiments WHERE experiment_id = ?", (experiment.experiment_id,)
            ).fetchone():
                raise NotFound(f"experiment {experiment.name!r} not found")
            conn.execute(
                "INSERT INTO runs (run_id, experiment_id, run_name, status, start_time, "
                "parent_run_id) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    experiment.experiment_id,
                    run_name,
                    RunStatus.RUNNING.value,
                    start_time,
                    parent_run_id,
                ),
            )
            conn.executemany(
                "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)",
                [(run_id, key, value) for key, value in tags.items()],
            )
        return self.get_run(run_id)

    def set_run_status(self, run_id: str, status: RunStatus, end_time: int | None) -> None:
        with self.db.write() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, end_time = ? WHERE run_id = ?",
                (status.value, end_time, run_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"run {run_id!r} not found")

    def get_run(self, run_id: str) -> RunRecord:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT runs.*, experiments.name AS experiment_name FROM runs "
                "JOIN experiments USING (experiment_id) WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"run {run_id!r} not found")
            return search.load_runs(conn, [row])[0]

    def search_runs(
        self,
        experiment_name: str,
        query: RunQuery,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[RunRecord]:
        """One page in SQL (``search.py``): the filter and the order in the query, a keyset
        cursor in the token, and the page's runs built in five more queries.

        Raises:
            NotFound: no such experiment.
            InvalidInput: bad ``max_results``, or a token that is not this query's.
        """
        with self.db.read() as conn:
            experiment = conn.execute(
                "SELECT experiment_id FROM experiments WHERE name = ?", (experiment_name,)
            ).fetchone()
            if experiment is None:
                raise NotFound(f"experiment {experiment_name!r} not found")
            page = search.search_runs(
                conn,
                experiment_id=experiment["experiment_id"],
                experiment_name=experiment_name,
                predicate=query.predicate,
                order=query.order,
                max_results=max_results,
                page_token=page_token,
                fingerprint=query.fingerprint,
            )
            items = search.load_runs(conn, page.rows)
        return Page[RunRecord](items=items, next_token=page.next_token)

    def _log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric],
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> None:
        # The limits were checked by ``MetadataStore.log_batch``; one transaction writes all.
        with self.db.write() as conn:
            self._require_run(conn, run_id)
            for key, value in params.items():
                row = conn.execute(
                    "SELECT value FROM params WHERE run_id = ? AND key = ?", (run_id, key)
                ).fetchone()
                if row is not None and row["value"] != value:
                    raise Conflict(
                        f"param {key!r} of run {run_id!r} is already set to a different value; "
                        "params are write-once"
                    )
            conn.executemany(
                "INSERT OR IGNORE INTO params (run_id, key, value) VALUES (?, ?, ?)",
                [(run_id, key, value) for key, value in params.items()],
            )
            conn.executemany(
                "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                [(run_id, key, value) for key, value in tags.items()],
            )
            rows = [(run_id, m.key, m.step, m.value, m.timestamp) for m in metrics]
            conn.executemany(
                "INSERT INTO metric_points (run_id, key, step, value, timestamp) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, key, step) DO UPDATE SET "
                "value = excluded.value, timestamp = excluded.timestamp",
                rows,
            )
            # Latest = highest step, then highest timestamp; a late-arriving older point never
            # replaces a newer one.
            conn.executemany(
                "INSERT INTO latest_metrics (run_id, key, step, value, timestamp) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET "
                "step = excluded.step, value = excluded.value, timestamp = excluded.timestamp "
                "WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step "
                "AND excluded.timestamp >= latest_metrics.timestamp)",
                rows,
            )
            blocks.refresh_blocks(
                conn, run_id, ((m.key, m.step >> blocks.BLOCK_SHIFT) for m in metrics)
            )

    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[Metric]:
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        after = decode_token(page_token, ("step",))["step"] if page_token else -1
        with self.db.read() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                "SELECT step, value, timestamp FROM metric_points "
                "WHERE run_id = ? AND key = ? AND step > ? ORDER BY step LIMIT ?",
                (run_id, key, after, limit + 1),
            ).fetchall()
        items = [
            Metric(key=key, value=r["value"], step=r["step"], timestamp=r["timestamp"])
            for r in rows[:limit]
        ]
        token = encode_token({"step": items[-1].step}) if len(rows) > limit else None
        return Page[Metric](items=items, next_token=token)

    def log_dataset(self, run_id: str, dataset: Dataset) -> None:
        with self.db.write() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "INSERT OR REPLACE INTO datasets (run_id, name, uri, digest, digest_algorithm, "
                "size, version_id, logged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    dataset.name,
                    dataset.uri,
                    dataset.digest,
                    dataset.digest_algorithm,
                    dataset.size,
                    dataset.version_id,
                    dataset.logged_at,
                ),
            )

    def log_artifact(self, run_id: str, artifact: Artifact) -> None:
        with self.db.write() as conn:
            self._require_run(conn, run_id)
            try:
                conn.execute(
                    "INSERT INTO artifacts (run_id, name, uri, sha256, size, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        artifact.name,
                        artifact.uri,
                        artifact.sha256,
                        artifact.size,
                        artifact.created_at,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(
                    f"run {run_id!r} already has an artifact named {artifact.name!r}"
                ) from exc

    @staticmethod
    def _require_run(conn: sqlite3.Connection, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise NotFound(f"run {run_id!r} not found")

    def iter_metric_history(self, run_id: str, key: str) -> Iterator[Metric]:
        """Every point of a metric in step order, from one SELECT on the primary key (not
        1,000-point pages: 100 queries for a 100,000-point history).

        Raises:
            NotFound: no such run.
        """
        with self.db.read() as conn:
            self._require_run(conn, run_id)
            rows = blocks.history_rows(conn, run_id, key)
        return iter(metrics_of_rows(key, rows))

    def get_downsampled_history(self, run_id: str, key: str, max_points: int) -> list[Metric]:
        """``downsample`` of the full history, read from the ``metric_blocks`` summary when the
        history is big (``blocks.py``): a 100,000-point history is 6,250 block rows aggregated
        in SQLite, and entities are built only for the kept points.

        Raises:
            InvalidInput: bad ``max_points`` (nothing is read).
            NotFound: no such run.
        """
        check_max_points(max_points)
        with self.db.read() as conn:
            self._require_run(conn, run_id)
            rows = blocks.downsampled_rows(conn, run_id, key, max_points)
        return metrics_of_rows(key, rows)


def _experiment(row: sqlite3.Row) -> Experiment:
    return Experiment(
        experiment_id=row["experiment_id"],
        name=row["name"],
        created_at=row["created_at"],
        tags=json.loads(row["tags"]),
    )
