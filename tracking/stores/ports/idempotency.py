"""The ``IdempotencyStore`` port: one record per idempotency key, claimed atomically.

The API (``functions/api/idempotency.py``) claims a key before it runs a mutating request,
stores the answer once the request is done, and replays that answer for a retry with the same
key. Every backend runs the same contract tests (``tests/contract/test_idempotency_store.py``).
"""

from __future__ import annotations

import abc
from typing import Literal

from pydantic import BaseModel, ConfigDict

IdempotencyStatus = Literal["in_progress", "completed"]


class IdempotencyRecord(BaseModel):
    """What a key holds: the request's fingerprint and, once completed, its answer."""

    model_config = ConfigDict(frozen=True)

    key: str
    fingerprint: str
    status: IdempotencyStatus
    response_status: int | None = None
    response_body: str | None = None
    expires_at: int


class IdempotencyStore(abc.ABC):
    """Idempotency records. Implemented by the same adapters as ``MetadataStore``."""

    @abc.abstractmethod
    def claim(
        self, key: str, fingerprint: str, now: int, expires_at: int
    ) -> IdempotencyRecord | None:
        """Atomically create an ``in_progress`` record for ``key``.

        ``now`` and ``expires_at`` are seconds since the epoch; a record whose ``expires_at``
        is before ``now`` counts as absent and is replaced.

        Returns:
            ``None`` when this call created the record (the caller runs the request), else the
            live record someone else holds.
        """

    @abc.abstractmethod
    def complete(
        self, key: str, fingerprint: str, status: int, body: str, expires_at: int | None = None
    ) -> None:
        """Store the answer (HTTP status and JSON body) of the request that claimed ``key``.

        ``expires_at`` (when given) replaces the claim's expiry: a claim can be short-lived, so
        that a request that died without releasing it does not block its key for long, while
        the answer is kept for the full retention. Nothing changes when ``key`` is held under
        another fingerprint (it expired and was claimed again).
        """

    @abc.abstractmethod
    def release(self, key: str) -> None:
        """Delete ``key``'s record if it is still in progress, so a retry can run again."""
