"""The composition root: builds the store adapters named by a ``TrackingConfig``.

Adapters are imported lazily so that ``import tracking`` never imports boto3 or pynamodb.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from tracking.artifacts.base import ArtifactStore
from tracking.config import TrackingConfig
from tracking.errors import InvalidInput
from tracking.stores.ports.store import TrackingStore


def sqlite_path(uri: str) -> Path:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    if not uri.startswith("sqlite:///") or len(uri) <= len("sqlite:///"):
        raise InvalidInput(f"TRACKING_URI {uri!r}: expected sqlite:///<path>")
    return Path(uri[len("sqlite:///") :])


def build_metadata_store(uri: str) -> TrackingStore:
    """Build the metadata store for ``sqlite:///<path>`` or ``dynamodb://<table-prefix>``.

    Raises:
        InvalidInput: the URI's scheme is not supported or its location is empty.
    """
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme == "sqlite":
        from tracking.stores.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(uri))
    if scheme == "dynamodb":
        from tracking.stores.dynamodb import DynamoDBStore

        prefix = uri[len("dynamodb://") :].strip("/")
        if not prefix:
            raise InvalidInput("TRACKING_URI dynamodb://<table-prefix> needs a table prefix")
        return DynamoDBStore(prefix)
    raise InvalidInput(
        f"unsupported TRACKING_URI {uri!r}: use sqlite:///<path> or dynamodb://<table-prefix>"
    )


def build_artifact_store(uri: str) -> ArtifactStore:
    """Build the artifact store for ``file://<path>`` or ``s3://<bucket>/<prefix>``.

    Raises:
        InvalidInput: the URI's scheme is not supported or its location is empty.
    """
    if uri.startswith("file://"):
        from tracking.artifacts.local import LocalArtifactStore

        path = uri[len("file://") :]
        if not path:
            raise InvalidInput("ARTIFACT_URI file://<path> needs a path")
        return LocalArtifactStore(Path(path))
    if uri.startswith("s3://"):
        from tracking.artifacts.s3 import S3ArtifactStore

        parsed = urlparse(uri)
        if not parsed.netloc:
            raise InvalidInput("ARTIFACT_URI s3://<bucket>/<prefix> needs a bucket")
        return S3ArtifactStore(parsed.netloc, parsed.path.strip("/"))
    raise InvalidInput(
        f"unsupported ARTIFACT_URI {uri!r}: use file://<path> or s3://<bucket>/<prefix>"
    )


def build_stores(config: TrackingConfig) -> tuple[TrackingStore, ArtifactStore]:
    return build_metadata_store(config.tracking_uri), build_artifact_store(config.artifact_uri)
