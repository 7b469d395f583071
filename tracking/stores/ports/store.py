"""``TrackingStore``: one adapter serves every port, sharing its connection or tables."""

from __future__ import annotations

import abc

from tracking.stores.ports.idempotency import IdempotencyStore
from tracking.stores.ports.metadata import MetadataStore
from tracking.stores.ports.outbox import OutboxStore
from tracking.stores.ports.registry import RegistryStore


class TrackingStore(MetadataStore, RegistryStore, OutboxStore, IdempotencyStore, abc.ABC):
    """A backend that stores tracking metadata, the model registry (with its event outbox) and
    idempotency records."""
