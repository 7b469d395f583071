"""The model registry of the SQLite store (the ``RegistryStore`` port): tables and queries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from tracking import signatures
from tracking.entities import (
    AliasChange,
    AliasState,
    Flavor,
    HistoryAction,
    ModelVersion,
    Page,
    RegisteredModel,
    Stage,
    TrafficPolicy,
)
from tracking.errors import Conflict, NotFound
from tracking.events.outbox import new_record
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tracking.stores.ports.registry import AliasWrite, RegistryStore, check_tags
from tracking.stores.sqlite.database import SQLiteDatabase
from tracking.stores.sqlite.outbox import OUTBOX_SCHEMA, insert_event

REGISTRY_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    latest_version INTEGER NOT NULL,
    description TEXT,
    tags TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    experiment_name TEXT NOT NULL,
    artifact_name TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    flavor TEXT NOT NULL,
    signature TEXT NOT NULL DEFAULT '[]',
    description TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    stage TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL REFERENCES models(name),
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous TEXT NOT NULL DEFAULT '[]',
    revision TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS model_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL REFERENCES models(name),
    action TEXT NOT NULL,
    alias TEXT,
    from_version INTEGER,
    to_version INTEGER,
    actor TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS model_history_by_name ON model_history (name, seq);
CREATE TABLE IF NOT EXISTS model_traffic (
    name TEXT PRIMARY KEY REFERENCES models(name),
    policy_id TEXT NOT NULL,
    weights TEXT NOT NULL,
    shadow TEXT NOT NULL DEFAULT '[]',
    sticky TEXT,
    revision INTEGER NOT NULL,
    updated_at INTEGER,
    updated_by TEXT,
    reason TEXT
);
"""
    + OUTBOX_SCHEMA
)


class SQLiteRegistry(RegistryStore):
    """Registry tables in the same SQLite file; ``self.db`` comes from the store."""

    db: SQLiteDatabase

    def create_model_version(
        self, version: ModelVersion, *, expected_latest: int, change: AliasChange
    ) -> None:
        check_tags(version.tags, f"model {version.name!r} version {version.version}")
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT latest_version FROM models WHERE name = ?", (version.name,)
            ).fetchone()
            current = 0 if row is None else row["latest_version"]
            if current != expected_latest or version.version != expected_latest + 1:
                raise Conflict(
                    f"model {version.name!r} version {version.version} was taken concurrently"
                )
            if row is None:
                conn.execute(
                    "INSERT INTO models (name, created_at, updated_at, latest_version) "
                    "VALUES (?, ?, ?, ?)",
                    (version.name, version.created_at, version.created_at, version.version),
                )
            else:
                conn.execute(
                    "UPDATE models SET latest_version = ?, updated_at = ? WHERE name = ?",
                    (version.version, version.created_at, version.name),
                )
            conn.execute(
                "INSERT INTO model_versions (name, version, run_id, experiment_name, "
                "artifact_name, artifact_uri, sha256, size, flavor, signature, description, tags, "
                "metadata, stage, created_at, actor) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    version.name, version.version, version.run_id, version.experiment_name,
                    version.artifact_name, version.artifact_uri, version.sha256, version.size,
                    version.flavor.value,
                    signatures.encode(version.signature, version.output_signature),
                    version.description, json.dumps(version.tags), json.dumps(version.metadata),
                    version.stage.value, version.created_at, version.actor,
                ),
            )  # fmt: skip
            _insert_history(conn, change)

    def get_model(self, name: str) -> RegisteredModel:
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM models WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"model {name!r} not found")
            return _model(conn, row)

    def list_models(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        after = decode_token(page_token, ("after",))["after"] if page_token else ""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM models WHERE name > ? ORDER BY name LIMIT ?", (after, limit + 1)
            ).fetchall()
            items = [_model(conn, row) for row in rows[:limit]]
        token = encode_token({"after": items[-1].name}) if len(rows) > limit else None
        return Page[RegisteredModel](items=items, next_token=token)

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self.db.read() as conn:
            _require_model(conn, name)
            row = conn.execute(
                "SELECT * FROM model_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        if row is None:
            raise NotFound(f"model {name!r} has no version {version}")
        return _version(row)

    def list_versions(
        self, name: str, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[ModelVersion]:
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        before = decode_token(page_token, ("before",))["before"] if page_token else 2**62
        with self.db.read() as conn:
            _require_model(conn, name)
            rows = conn.execute(
                "SELECT * FROM model_versions WHERE name = ? AND version < ? "
                "ORDER BY version DESC LIMIT ?",
                (name, before, limit + 1),
            ).fetchall()
        items = [_version(row) for row in rows[:limit]]
        token = encode_token({"before": items[-1].version}) if len(rows) > limit else None
        return Page[ModelVersion](items=items, next_token=token)

    def get_alias(self, name: str, alias: str) -> AliasState | None:
        with self.db.read() as conn:
            _require_model(conn, name)
            row = conn.execute(
                "SELECT * FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
        if row is None:
            return None
        return AliasState(
            alias=alias,
            version=row["version"],
            previous=json.loads(row["previous"]),
            revision=row["revision"],
        )

    def apply_change(
        self,
        name: str,
        *,
        alias_writes: Sequence[AliasWrite],
        stage_updates: Mapping[int, Stage],
        change: AliasChange,
    ) -> None:
        with self.db.write() as conn:
            _require_model(conn, name)
            _apply_alias_writes(conn, name, alias_writes)
            for number, stage in stage_updates.items():
                cursor = conn.execute(
                    "UPDATE model_versions SET stage = ? WHERE name = ? AND version = ?",
                    (stage.value, name, number),
                )
                if cursor.rowcount == 0:
                    raise NotFound(f"model {name!r} has no version {number}")
            conn.execute(
                "UPDATE models SET updated_at = ? WHERE name = ?", (change.timestamp, name)
            )
            _insert_history(conn, change)

    def get_traffic(self, name: str) -> TrafficPolicy | None:
        with self.db.read() as conn:
            _require_model(conn, name)
            row = conn.execute("SELECT * FROM model_traffic WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return TrafficPolicy(
            name=name,
            policy_id=row["policy_id"],
            weights=json.loads(row["weights"]),
            shadow=json.loads(row["shadow"]),
            sticky=row["sticky"],
            revision=row["revision"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
            reason=row["reason"],
        )

    def set_traffic(
        self,
        name: str,
        *,
        policy: TrafficPolicy,
        expected_revision: int,
        alias_checks: Sequence[AliasWrite],
        change: AliasChange,
    ) -> None:
        with self.db.write() as conn:
            _require_model(conn, name)
            row = conn.execute(
                "SELECT revision FROM model_traffic WHERE name = ?", (name,)
            ).fetchone()
            if (0 if row is None else row["revision"]) != expected_revision:
                raise Conflict(
                    f"the traffic policy of model {name!r} was changed concurrently; "
                    "read it again and retry"
                )
            _apply_alias_writes(conn, name, alias_checks)
            conn.execute(
                "INSERT OR REPLACE INTO model_traffic (name, policy_id, weights, shadow, sticky, "
                "revision, updated_at, updated_by, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, policy.policy_id, json.dumps(policy.weights), json.dumps(policy.shadow),
                 policy.sticky, policy.revision, policy.updated_at, policy.updated_by,
                 policy.reason),
            )  # fmt: skip
            conn.execute(
                "UPDATE models SET updated_at = ? WHERE name = ?", (change.timestamp, name)
            )
            _insert_history(conn, change, policy)

    def list_history(
        self, name: str, max_results: int = MAX_PAGE_SIZE, page_token: str | None = None
    ) -> Page[AliasChange]:
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        after = decode_token(page_token, ("after",))["after"] if page_token else 0
        with self.db.read() as conn:
            _require_model(conn, name)
            rows = conn.execute(
                "SELECT * FROM model_history WHERE name = ? AND seq > ? ORDER BY seq LIMIT ?",
                (name, after, limit + 1),
            ).fetchall()
        items = [
            AliasChange(
                name=row["name"],
                action=HistoryAction(row["action"]),
                alias=row["alias"],
                from_version=row["from_version"],
                to_version=row["to_version"],
                actor=row["actor"],
                timestamp=row["timestamp"],
                reason=row["reason"],
                change_id=row["change_id"],
            )
            for row in rows[:limit]
        ]
        token = encode_token({"after": rows[limit - 1]["seq"]}) if len(rows) > limit else None
        return Page[AliasChange](items=items, next_token=token)

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        with self.db.write() as conn:
            row = conn.execute("SELECT tags FROM models WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"model {name!r} not found")
            merged = json.loads(row["tags"]) | dict(tags or {})
            check_tags(merged, f"model {name!r}")
            conn.execute(
                "UPDATE models SET tags = ?, description = COALESCE(?, description) WHERE name = ?",
                (json.dumps(merged), description, name),
            )
        return self.get_model(name)

    def update_version(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        with self.db.write() as conn:
            _require_model(conn, name)
            row = conn.execute(
                "SELECT tags FROM model_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if row is None:
                raise NotFound(f"model {name!r} has no version {version}")
            merged = json.loads(row["tags"]) | dict(tags or {})
            check_tags(merged, f"model {name!r} version {version}")
            conn.execute(
                "UPDATE model_versions SET tags = ?, description = COALESCE(?, description) "
                "WHERE name = ? AND version = ?",
                (json.dumps(merged), description, name, version),
            )
        return self.get_version(name, version)


def _require_model(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
        raise NotFound(f"model {name!r} not found")


def _apply_alias_writes(
    conn: sqlite3.Connection, name: str, alias_writes: Sequence[AliasWrite]
) -> None:
    """Apply each write if its alias still has the expected revision, else raise Conflict."""
    for write in alias_writes:
        row = conn.execute(
            "SELECT revision FROM model_aliases WHERE name = ? AND alias = ?",
            (name, write.alias),
        ).fetchone()
        revision = None if row is None else row["revision"]
        if revision != write.expected_revision:
            raise Conflict(
                f"alias {write.alias!r} of model {name!r} was moved concurrently; "
                "read it again and retry"
            )
        if write.check_only:
            continue
        if write.state is None:
            conn.execute(
                "DELETE FROM model_aliases WHERE name = ? AND alias = ?",
                (name, write.alias),
            )
        else:
            conn.execute(
                "INSERT OR REPLACE INTO model_aliases (name, alias, version, previous, "
                "revision) VALUES (?, ?, ?, ?, ?)",
                (name, write.alias, write.state.version, json.dumps(write.state.previous),
                 write.state.revision),
            )  # fmt: skip


def _insert_history(
    conn: sqlite3.Connection, change: AliasChange, policy: TrafficPolicy | None = None
) -> None:
    """Append the history entry and, in the same transaction, its event to the outbox."""
    conn.execute(
        "INSERT INTO model_history (change_id, name, action, alias, from_version, to_version, "
        "actor, timestamp, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (change.change_id, change.name, change.action.value, change.alias, change.from_version,
         change.to_version, change.actor, change.timestamp, change.reason),
    )  # fmt: skip
    insert_event(conn, new_record(change, policy))


def _model(conn: sqlite3.Connection, row: sqlite3.Row) -> RegisteredModel:
    aliases = {
        r["alias"]: r["version"]
        for r in conn.execute(
            "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias",
            (row["name"],),
        )
    }
    return RegisteredModel(
        name=row["name"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        latest_version=row["latest_version"],
        description=row["description"],
        tags=json.loads(row["tags"]),
        aliases=aliases,
    )


def _version(row: sqlite3.Row) -> ModelVersion:
    inputs, outputs = signatures.decode(row["signature"])
    return ModelVersion(
        name=row["name"],
        version=row["version"],
        run_id=row["run_id"],
        experiment_name=row["experiment_name"],
        artifact_name=row["artifact_name"],
        artifact_uri=row["artifact_uri"],
        sha256=row["sha256"],
        size=row["size"],
        flavor=Flavor(row["flavor"]),
        signature=inputs,
        output_signature=outputs,
        description=row["description"],
        tags=json.loads(row["tags"]),
        metadata=json.loads(row["metadata"]),
        stage=Stage(row["stage"]),
        created_at=row["created_at"],
        actor=row["actor"],
    )
