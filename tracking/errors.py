"""The one error tree of the tracking SDK.

    TrackingError                 base of everything the SDK raises on purpose
    ├── NotFound                  an experiment, run, model, version, alias or artifact is missing
    ├── AlreadyExists             a create would overwrite something that exists
    ├── Conflict                  a concurrent or contradicting change (lost race, param rewrite)
    ├── InvalidInput              the caller's input breaks a documented rule; nothing was written
    ├── IntegrityError            stored bytes do not match their recorded SHA-256
    └── StoreUnavailable          a backend (DynamoDB, S3, the SQLite file) failed or timed out

Adapters translate their library's exceptions into this tree with ``raise ... from`` so that
callers (the API's error table, the CLI) handle one set of types.
"""

from __future__ import annotations


class TrackingError(Exception):
    """Base class of every error the SDK raises on purpose."""

    code = "tracking_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(TrackingError):
    """The requested entity does not exist."""

    code = "not_found"


class AlreadyExists(TrackingError):
    """Creating the entity would overwrite an existing one."""

    code = "already_exists"


class Conflict(TrackingError):
    """The change contradicts the current state, or lost a race with another writer."""

    code = "conflict"


class InvalidInput(TrackingError):
    """The input breaks a documented rule. Raised before anything is written."""

    code = "invalid_input"


class IntegrityError(TrackingError):
    """Stored bytes do not match the SHA-256 recorded when they were written."""

    code = "integrity_error"


class StoreUnavailable(TrackingError):
    """A storage backend failed or timed out; the operation may be retried."""

    code = "store_unavailable"
