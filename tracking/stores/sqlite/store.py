"""``SQLiteStore``: the embedded default, every port on one SQLite file in WAL mode."""

from __future__ import annotations

from pathlib import Path

from tracking.paths import local_names
from tracking.stores.ports.store import TrackingStore
from tracking.stores.sqlite.database import SQLiteDatabase
from tracking.stores.sqlite.idempotency import SQLiteIdempotency
from tracking.stores.sqlite.metadata import SQLiteMetadata
from tracking.stores.sqlite.outbox import SQLiteOutbox
from tracking.stores.sqlite.registry import SQLiteRegistry
from tracking.stores.sqlite.schema import SCHEMA, SCHEMA_VERSION, upgrade


class SQLiteStore(SQLiteMetadata, SQLiteRegistry, SQLiteOutbox, SQLiteIdempotency, TrackingStore):
    """Tracking metadata, the model registry and idempotency records in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.db = SQLiteDatabase(Path(path), SCHEMA, SCHEMA_VERSION, upgrade)

    def initialize(self) -> None:
        self.db.connection()

    def locations(self) -> frozenset[str]:
        return local_names(self.db.path)

    def close(self) -> None:
        self.db.close()
