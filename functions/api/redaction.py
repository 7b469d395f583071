"""Keep storage locations out of response bodies.

The SDK's error messages are written for operators and may name a table, a bucket, a folder, a
URI or an ARN. Before any error message reaches a client, those are replaced with
``<redacted>``: the names this app is configured with, and anything shaped like a URI or an ARN
(which also covers a client's own hostile input echoed back in a validation message).
"""

from __future__ import annotations

import re

from tracking.artifacts.base import ArtifactStore
from tracking.stores.ports.metadata import MetadataStore

REDACTED = "<redacted>"
_LOCATION = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\barn:)[^\s'\"]*", re.IGNORECASE)


def storage_names(store: MetadataStore, artifacts: ArtifactStore) -> tuple[str, ...]:
    """Table, bucket, file and folder names a client must not learn, longest first.

    The stores say where they keep data (``locations()``), so no URI is parsed twice.
    """
    names = store.locations() | artifacts.locations()
    return tuple(sorted((name for name in names if len(name) > 1), key=len, reverse=True))


class Redactor:
    """Replace this app's storage names, URIs and ARNs in a message."""

    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self.names = names

    def __call__(self, message: str) -> str:
        message = _LOCATION.sub(REDACTED, message)
        for name in self.names:
            message = message.replace(name, REDACTED)
        return message
