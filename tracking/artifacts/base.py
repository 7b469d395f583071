"""The ``ArtifactStore`` port: immutable, checksummed files.

Keys are built by the store from validated ids and names (``runs/<run_id>/<name>/<file>``),
never taken from a client. Every upload records SHA-256 and size; every download verifies them.
"""

from __future__ import annotations

import abc
import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tracking.errors import InvalidInput
from tracking.validation import validate_name

CHUNK_SIZE = 1024 * 1024


class StoredObject(BaseModel):
    """What an upload produced: where the bytes are and what they are."""

    model_config = ConfigDict(frozen=True)

    uri: str
    sha256: str
    size: int


class DatasetDigest(BaseModel):
    """A dataset version: its content digest (or the object's checksum/ETag) and version id."""

    model_config = ConfigDict(frozen=True)

    uri: str
    digest: str
    digest_algorithm: str
    size: int | None = None
    version_id: str | None = None


def sha256_file(path: Path) -> tuple[str, int]:
    """Return the hex SHA-256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def artifact_key(run_id: str, name: str, filename: str) -> str:
    """The relative key of a run's artifact; every part passes the name allow-list."""
    return "/".join(
        (
            "runs",
            validate_name(run_id, "run id"),
            validate_name(name, "artifact name"),
            validate_name(filename, "artifact file name"),
        )
    )


#: Top-level folders that ``put_object`` may write: the prediction log and the outcomes. Run
#: artifacts (``runs/``) only ever come from ``upload``, with their checksum in the metadata store.
OBJECT_NAMESPACES = frozenset({"predictions", "feedback"})
MAX_OBJECT_DEPTH = 8


def object_key(key: str, *, prefix: bool = False) -> str:
    """Validate a data key (``predictions/churn/2026-12-02/19/x.jsonl.gz``) or a folder prefix.

    Every segment passes the name allow-list (no ``..``, no ``/`` inside a segment, no empty
    segment), and the first one is one of ``OBJECT_NAMESPACES``, so no key escapes its folder or
    prefix or lands among run artifacts.

    Raises:
        InvalidInput: the key breaks one of those rules.
    """
    if not isinstance(key, str) or not key:
        raise InvalidInput("an object key must be a non-empty string")
    parts = key.split("/")
    if len(parts) > MAX_OBJECT_DEPTH or (not prefix and len(parts) < 2):
        raise InvalidInput(f"object key {key[:64]!r} has too many or too few segments")
    for part in parts:
        validate_name(part, "object key segment")
    if parts[0] not in OBJECT_NAMESPACES:
        raise InvalidInput(f"object keys must start with one of {sorted(OBJECT_NAMESPACES)}")
    return key


class ArtifactStore(abc.ABC):
    """Immutable artifact storage (a local folder or an S3 prefix)."""

    @abc.abstractmethod
    def initialize(self) -> None:
        """Create the folder or bucket when missing. Idempotent; used by ``tracking init``."""

    @abc.abstractmethod
    def locations(self) -> frozenset[str]:
        """Names of where this store keeps objects (bucket, folder), for redacting messages."""

    @abc.abstractmethod
    def upload(self, run_id: str, name: str, source: Path) -> StoredObject:
        """Copy ``source`` to the run's artifact ``name`` and return its URI, SHA-256 and size.

        Raises:
            InvalidInput: the run id, name or file name breaks the allow-list, or ``source`` is
                not a readable file.
            AlreadyExists: the artifact exists (artifacts are never overwritten).
            StoreUnavailable: the backend failed.
        """

    @abc.abstractmethod
    def download(
        self, uri: str, destination: Path, expected_sha256: str, expected_size: int | None = None
    ) -> Path:
        """Copy the artifact at ``uri`` to ``destination`` after checking its SHA-256.

        The file appears at ``destination`` only when the digest matches (written to a temporary
        name and renamed), so a reader never sees unverified bytes. With ``expected_size`` (the
        size recorded at upload) the transfer stops once the bytes outgrow it.

        Raises:
            NotFound: nothing at ``uri``.
            InvalidInput: ``uri`` does not belong to this store.
            IntegrityError: the bytes do not match ``expected_sha256`` (or ``expected_size``).
        """

    @abc.abstractmethod
    def delete(self, uri: str) -> None:
        """Remove an artifact; used only to undo an upload whose metadata write failed."""

    @abc.abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an artifact exists at ``uri``."""

    # -- data objects (prediction log, outcomes) ---------------------------------------------

    @abc.abstractmethod
    def put_object(self, key: str, data: bytes) -> str:
        """Write ``data`` under the relative ``key`` (see ``object_key``) and return its URI.

        The object appears whole or not at all, and an existing key is never overwritten.

        Raises:
            InvalidInput: ``key`` breaks ``object_key``'s rules; nothing is written.
            AlreadyExists: something is stored under ``key``.
            StoreUnavailable: the backend failed; nothing is left under ``key``.
        """

    @abc.abstractmethod
    def list_objects(self, prefix: str) -> list[str]:
        """The relative keys of every object under the folder ``prefix``, sorted.

        ``prefix`` is a whole-segment folder (``predictions/churn/2026-12-02``): listing it never
        returns ``predictions/churn/2026-12-020/...``.

        Raises:
            InvalidInput: ``prefix`` breaks ``object_key``'s rules.
            StoreUnavailable: the backend failed.
        """

    @abc.abstractmethod
    def get_object(self, key: str, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        """The bytes stored under ``key``.

        Raises:
            InvalidInput: ``key`` breaks ``object_key``'s rules.
            NotFound: nothing under ``key``.
            IntegrityError: the object is larger than ``max_bytes``.
            StoreUnavailable: the backend failed.
        """
