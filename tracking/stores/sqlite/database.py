"""Per-thread SQLite connections with explicit transactions (WAL mode).

WAL lets a trainer write while the API reads. Each thread gets its own connection (sqlite3
connections must not be shared across threads while in a transaction), and every write runs in
one ``BEGIN IMMEDIATE`` transaction, so a failed call leaves the file as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from tracking.errors import InvalidInput, StoreUnavailable

BUSY_TIMEOUT_MS = 10_000
#: sqlite3 cannot encode a lone surrogate ("\ud800"), which Python strings may hold.
NOT_UNICODE = "text must be valid Unicode (a lone surrogate cannot be stored or looked up)"


class SQLiteDatabase:
    """Per-thread connections to one SQLite file, with explicit transactions."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._local = threading.local()
        self._initialized = False
        self._init_lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self._ensure_schema()
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the module never opens
            # implicit transactions behind our back.
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        return conn

    def _ensure_schema(self) -> None:
        with self._init_lock:
            if self._initialized:
                return
            conn = self._connect()
            try:
                conn.executescript(self._schema)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot create SQLite schema: {exc}") from exc
            finally:
                conn.close()
            self._initialized = True

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite database is unavailable: {exc}") from exc
        try:
            yield conn
        except UnicodeEncodeError:
            conn.execute("ROLLBACK")
            raise InvalidInput(NOT_UNICODE) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreUnavailable(f"SQLite commit failed: {exc}") from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so multi-statement reads see one snapshot."""
        conn = self.connection()
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite database is unavailable: {exc}") from exc
        try:
            yield conn
        except UnicodeEncodeError:
            raise InvalidInput(NOT_UNICODE) from None
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
