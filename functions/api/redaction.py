"""Keep storage locations out of response bodies.

The SDK's error messages are written for operators and may name a table, a bucket, a folder, a
URI or an ARN. Before any error message reaches a client, those are replaced with
``<redacted>``: the names this app is configured with, and anything shaped like a URI or an ARN
(which also covers a client's own hostile input echoed back in a validation message).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from tracking.stores.dynamodb.schema import metrics_table_name, tracking_table_name

REDACTED = "<redacted>"
_LOCATION = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\barn:)[^\s'\"]*", re.IGNORECASE)


def storage_names(tracking_uri: str, artifact_uri: str) -> tuple[str, ...]:
    """Table, bucket, file and folder names a client must not learn, longest first."""
    names: set[str] = set()
    if tracking_uri.startswith("dynamodb://"):
        prefix = tracking_uri[len("dynamodb://") :].strip("/")
        if prefix:
            names |= {tracking_table_name(prefix), metrics_table_name(prefix)}
    elif tracking_uri.startswith("sqlite:///"):
        names |= _path_names(tracking_uri[len("sqlite:///") :])
    parsed = urlsplit(artifact_uri)
    if parsed.scheme == "s3" and parsed.netloc:
        names.add(parsed.netloc)
    elif parsed.scheme == "file":
        names |= _path_names(parsed.netloc + parsed.path)
    return tuple(sorted((name for name in names if len(name) > 1), key=len, reverse=True))


def _path_names(path: str) -> set[str]:
    if not path:
        return set()
    return {path.rstrip("/") or path, str(Path(path).resolve())}


class Redactor:
    """Replace this app's storage names, URIs and ARNs in a message."""

    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self._names = names

    def __call__(self, message: str) -> str:
        message = _LOCATION.sub(REDACTED, message)
        for name in self._names:
            message = message.replace(name, REDACTED)
        return message
