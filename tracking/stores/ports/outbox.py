"""The ``OutboxStore`` port: the events registry changes wrote, and their delivery state.

Events are written by the registry methods of the same store, inside the change's own
transaction (``RegistryStore.create_model_version``, ``apply_change``, ``set_traffic``), so a
change without its event, or an event without its change, cannot exist. This port reads them
and records webhook delivery. Every backend runs ``tests/contract/test_events.py``.
"""

from __future__ import annotations

import abc

from tracking.entities import EventStatus, OutboxRecord, Page
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE

#: How many due events one ``due_events`` call may return.
MAX_DUE = 100


class OutboxStore(abc.ABC):
    """Outbox reads and delivery bookkeeping."""

    @abc.abstractmethod
    def list_events(
        self,
        status: EventStatus | None = None,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[OutboxRecord]:
        """Events, oldest first, optionally only those in ``status``.

        Raises:
            InvalidInput: bad page size or token.
        """

    @abc.abstractmethod
    def get_event(self, event_id: str) -> OutboxRecord:
        """Raises:
        NotFound: no such event.
        """

    @abc.abstractmethod
    def due_events(self, now: int, limit: int = MAX_DUE) -> list[OutboxRecord]:
        """Pending events whose ``next_attempt_at`` is at or before ``now`` (ms), oldest first.

        On DynamoDB the listing comes from an index and may lag a write by a moment; the
        dispatcher re-reads each event before it acts on it.
        """

    @abc.abstractmethod
    def update_delivery(self, record: OutboxRecord, *, expected_attempts: int) -> bool:
        """Store ``record``'s delivery state if the stored ``attempts`` is ``expected_attempts``.

        The condition makes a claim: two dispatchers that read the same attempt count cannot
        both take the event. The event itself is never changed.

        Returns:
            False when another dispatcher changed the record first (nothing written).

        Raises:
            NotFound: no such event.
        """
