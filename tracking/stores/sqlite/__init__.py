"""The embedded default backend: one SQLite file (``SQLiteStore``)."""

from tracking.stores.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
