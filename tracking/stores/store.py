"""``TrackingStore``: one adapter serves both ports, sharing its connection or tables."""

from __future__ import annotations

import abc

from tracking.stores.base import MetadataStore
from tracking.stores.registry_base import RegistryStore


class TrackingStore(MetadataStore, RegistryStore, abc.ABC):
    """A backend that stores tracking metadata and the model registry."""
