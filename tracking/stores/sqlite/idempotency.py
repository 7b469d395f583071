"""The idempotency records of the SQLite store (the ``IdempotencyStore`` port)."""

from __future__ import annotations

import sqlite3

from tracking.stores.ports.idempotency import IdempotencyRecord, IdempotencyStore
from tracking.stores.sqlite.database import SQLiteDatabase


class SQLiteIdempotency(IdempotencyStore):
    """Claims, completions and releases in the ``idempotency`` table of the store's file."""

    db: SQLiteDatabase

    def claim(
        self, key: str, fingerprint: str, now: int, expires_at: int
    ) -> IdempotencyRecord | None:
        with self.db.write() as conn:
            row = conn.execute("SELECT * FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row is not None and row["expires_at"] >= now:
                return _idempotency_record(row)
            conn.execute(
                "INSERT OR REPLACE INTO idempotency (key, fingerprint, status, response_status, "
                "response_body, expires_at) VALUES (?, ?, 'in_progress', NULL, NULL, ?)",
                (key, fingerprint, expires_at),
            )
        return None

    def complete(
        self, key: str, fingerprint: str, status: int, body: str, expires_at: int | None = None
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE idempotency SET status = 'completed', response_status = ?, "
                "response_body = ?, expires_at = COALESCE(?, expires_at) "
                "WHERE key = ? AND fingerprint = ?",
                (status, body, expires_at, key, fingerprint),
            )

    def release(self, key: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM idempotency WHERE key = ? AND status = 'in_progress'", (key,))


def _idempotency_record(row: sqlite3.Row) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=row["key"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        response_status=row["response_status"],
        response_body=row["response_body"],
        expires_at=row["expires_at"],
    )
