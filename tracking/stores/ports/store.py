"""``TrackingStore``: one adapter serves every port, sharing its connection or tables."""

from __future__ import annotations

import abc

from tracking.stores.ports.idempotency import IdempotencyStore
from tracking.stores.ports.metadata import MetadataStore
from tracking.stores.ports.registry import RegistryStore


class TrackingStore(MetadataStore, RegistryStore, IdempotencyStore, abc.ABC):
    """A backend that stores tracking metadata, the model registry and idempotency records."""
