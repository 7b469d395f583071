"""Per-thread SQLite connections with explicit transactions (WAL mode).

WAL lets a trainer write while the API reads. Each thread gets its own connection (sqlite3
connections must not be shared across threads while in a transaction), and every write runs in
one ``BEGIN IMMEDIATE`` transaction, so a failed call leaves the file as it was.

The first connection creates the missing tables and upgrades a file written by an older release
(``schema_version`` below ``version``) in one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tracking.errors import InvalidInput, StoreUnavailable

BUSY_TIMEOUT_MS = 10_000
#: sqlite3 cannot encode a lone surrogate ("\ud800"), which Python strings may hold.
NOT_UNICODE = "text must be valid Unicode (a lone surrogate cannot be stored or looked up)"
#: A file that never wrote its ``schema_version`` row: every release before version 2 did so.
UNVERSIONED = 1

#: ``upgrade(conn, found)`` brings a file at version ``found`` to the current one, inside the
#: transaction that then records the current version.
Upgrade = Callable[[sqlite3.Connection, int], None]


class SQLiteDatabase:
    """Per-thread connections to one SQLite file, with explicit transactions."""

    def __init__(
        self,
        path: Path,
        schema: str,
        version: int = UNVERSIONED,
        upgrade: Upgrade | None = None,
    ) -> None:
        self.path = path
        self._schema = schema
        self._version = version
        self._upgrade = upgrade
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
            _use_wal(conn)
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
                self._migrate(conn)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot create SQLite schema: {exc}") from exc
            finally:
                conn.close()
            self._initialized = True

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Upgrade an older file once, even when several processes open it at once: the
        version is read again under the write lock, so the second finds it done. A file at the
        current version (or a newer one) takes no write lock."""
        if self._found_version(conn) >= self._version:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = self._found_version(conn)
            if found < self._version:
                if self._upgrade is not None:
                    self._upgrade(conn, found)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (self._version,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _found_version(conn: sqlite3.Connection) -> int:
        found = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        return UNVERSIONED if found is None else int(found)

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


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (a no-op once it is). Switching needs the file to itself, and
    SQLite answers "database is locked" at once, without its busy handler, when another
    connection holds it: two processes opening a new or rollback-mode file together. Retry
    within the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
