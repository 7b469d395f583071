"""The storage ports: what every backend implements (``TrackingStore`` is all three)."""

from tracking.stores.ports.idempotency import IdempotencyRecord, IdempotencyStore
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MetadataStore
from tracking.stores.ports.outbox import OutboxStore
from tracking.stores.ports.registry import AliasWrite, RegistryStore
from tracking.stores.ports.store import TrackingStore

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "AliasWrite",
    "IdempotencyRecord",
    "IdempotencyStore",
    "MetadataStore",
    "OutboxStore",
    "RegistryStore",
    "TrackingStore",
]
