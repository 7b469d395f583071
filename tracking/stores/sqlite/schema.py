"""The SQLite store's tables: tracking, registry and idempotency, and the schema version.

Versions: 1, the first release (which never wrote its ``schema_version`` row); 2 adds
``metric_blocks``, backfilled from ``metric_points`` when an older file is opened.
"""

from __future__ import annotations

import sqlite3

from tracking.stores.sqlite.blocks import METRIC_BLOCKS_SCHEMA, backfill_blocks
from tracking.stores.sqlite.registry import REGISTRY_SCHEMA
from tracking.stores.sqlite.search import SEARCH_INDEXES

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL REFERENCES experiments(experiment_id),
    run_name TEXT,
    status TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER,
    parent_run_id TEXT REFERENCES runs(run_id)
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment_id, start_time DESC, run_id);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS tags (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS metric_points (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (run_id, key, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest_metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS datasets (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    uri TEXT NOT NULL,
    digest TEXT NOT NULL,
    digest_algorithm TEXT NOT NULL,
    size INTEGER,
    version_id TEXT,
    logged_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    uri TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    response_status INTEGER,
    response_body TEXT,
    expires_at INTEGER NOT NULL
);
"""

SCHEMA = _SCHEMA + METRIC_BLOCKS_SCHEMA + REGISTRY_SCHEMA + SEARCH_INDEXES


def upgrade(conn: sqlite3.Connection, found: int) -> None:
    """Bring a file at version ``found`` to ``SCHEMA_VERSION`` (``SCHEMA`` has created the
    missing tables; this fills what they summarise)."""
    if found < 2:
        backfill_blocks(conn)
