"""The event outbox of the SQLite store (the ``OutboxStore`` port).

Rows are inserted by the registry's writes in their own ``BEGIN IMMEDIATE`` transaction
(``insert_event``); this module reads them and records delivery.
"""

from __future__ import annotations

import json
import sqlite3

from tracking.entities import EventStatus, OutboxRecord, Page, RegistryEvent
from tracking.errors import NotFound
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tracking.stores.ports.outbox import MAX_DUE, OutboxStore
from tracking.stores.sqlite.database import SQLiteDatabase

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at INTEGER NOT NULL,
    delivered_to TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS outbox_events_by_status ON outbox_events (status, next_attempt_at, seq);
"""


def insert_event(conn: sqlite3.Connection, record: OutboxRecord) -> None:
    """Add an event inside the caller's transaction (a duplicate id fails the transaction)."""
    conn.execute(
        "INSERT INTO outbox_events (event_id, name, body, status, attempts, last_error, "
        "next_attempt_at, delivered_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (record.event.event_id, record.event.model, record.event.model_dump_json(),
         record.status.value, record.attempts, record.last_error, record.next_attempt_at,
         json.dumps(record.delivered_to)),
    )  # fmt: skip


def _record(row: sqlite3.Row) -> OutboxRecord:
    return OutboxRecord(
        event=RegistryEvent.model_validate_json(row["body"]),
        status=EventStatus(row["status"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        delivered_to=json.loads(row["delivered_to"]),
    )


class SQLiteOutbox(OutboxStore):
    """The ``outbox_events`` table of the store's file."""

    db: SQLiteDatabase

    def list_events(
        self,
        status: EventStatus | None = None,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[OutboxRecord]:
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        after = decode_token(page_token, ("after",))["after"] if page_token else 0
        query = "SELECT * FROM outbox_events WHERE seq > ?"
        args: list[object] = [after]
        if status is not None:
            query += " AND status = ?"
            args.append(EventStatus(status).value)
        with self.db.read() as conn:
            rows = conn.execute(f"{query} ORDER BY seq LIMIT ?", (*args, limit + 1)).fetchall()
        items = [_record(row) for row in rows[:limit]]
        token = encode_token({"after": rows[limit - 1]["seq"]}) if len(rows) > limit else None
        return Page[OutboxRecord](items=items, next_token=token)

    def get_event(self, event_id: str) -> OutboxRecord:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT * FROM outbox_events WHERE event_id = ?", (event_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"event {event_id!r} not found")
        return _record(row)

    def due_events(self, now: int, limit: int = MAX_DUE) -> list[OutboxRecord]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM outbox_events WHERE status = ? AND next_attempt_at <= ? "
                "ORDER BY seq LIMIT ?",
                (EventStatus.PENDING.value, now, max(1, min(limit, MAX_DUE))),
            ).fetchall()
        return [_record(row) for row in rows]

    def update_delivery(self, record: OutboxRecord, *, expected_attempts: int) -> bool:
        with self.db.write() as conn:
            cursor = conn.execute(
                "UPDATE outbox_events SET status = ?, attempts = ?, last_error = ?, "
                "next_attempt_at = ?, delivered_to = ? WHERE event_id = ? AND attempts = ?",
                (record.status.value, record.attempts, record.last_error, record.next_attempt_at,
                 json.dumps(record.delivered_to), record.event.event_id, expected_attempts),
            )  # fmt: skip
            if cursor.rowcount:
                return True
            found = conn.execute(
                "SELECT 1 FROM outbox_events WHERE event_id = ?", (record.event.event_id,)
            ).fetchone()
        if found is None:
            raise NotFound(f"event {record.event.event_id!r} not found")
        return False
