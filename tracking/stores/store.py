"""``TrackingStore``: one adapter serves every port, sharing its connection or tables."""

from __future__ import annotations

import abc

from tracking.stores.base import MetadataStore
from tracking.stores.idempotency_base import IdempotencyStore
from tracking.stores.registry_base import RegistryStore


class TrackingStore(MetadataStore, RegistryStore, IdempotencyStore, abc.ABC):
    """A backend that stores tracking metadata, the model registry and idempotency records."""
