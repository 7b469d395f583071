"""The ``ArtifactStore`` adapter for a local folder (the embedded default).

Layout: ``<root>/runs/<run_id>/<name>/<file>``; URIs are ``file://<absolute path>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from tracking.artifacts.base import (
    CHUNK_SIZE,
    ArtifactStore,
    StoredObject,
    artifact_key,
    object_key,
)
from tracking.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound, StoreUnavailable
from tracking.paths import local_names
from tracking.validation import validate_name

SCHEME = "file://"
FILE_MODE = 0o644
DIR_MODE = 0o755
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def check_sha256(value: object) -> str:
    """Return ``value`` lower-cased if it is a hex SHA-256 digest.

    Raises:
        InvalidInput: ``value`` is not 64 hex digits.
    """
    text = value.lower() if isinstance(value, str) else ""
    if not _SHA256_HEX.match(text):
        raise InvalidInput("expected_sha256 must be 64 hexadecimal digits")
    return text


def check_size(expected_size: object) -> int | None:
    if expected_size is None:
        return None
    if isinstance(expected_size, bool) or not isinstance(expected_size, int) or expected_size < 0:
        raise InvalidInput("expected_size must be a non-negative integer")
    return expected_size


def write_verified(
    chunks: Iterable[bytes],
    destination: Path,
    expected_sha256: str,
    expected_size: int | None = None,
) -> Path:
    """Write ``chunks`` to ``destination`` only if their SHA-256 is ``expected_sha256``.

    With ``expected_size``, reading stops as soon as the bytes outgrow it: an inflated artifact
    costs at most that many bytes of transfer and disk, not whatever an attacker stored.

    The bytes go to a hidden temporary file in the destination's folder and are renamed into place
    after the digest matched, so ``destination`` never holds unverified bytes. Whatever happens,
    the temporary file is removed. Shared by the local and S3 adapters.

    Raises:
        IntegrityError: the digest or the size does not match; nothing is left at
            ``destination``.
        StoreUnavailable: the destination could not be written.
        Exception: whatever iterating ``chunks`` raises (the caller translates it).
    """
    expected = check_sha256(expected_sha256)
    limit = check_size(expected_size)
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
        )
    except OSError as exc:
        raise StoreUnavailable(f"cannot write to {destination.parent}: {exc}") from exc
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if limit is not None and written > limit:
                    raise IntegrityError(
                        f"artifact is larger than its recorded {limit} bytes; "
                        f"nothing was written to {destination}"
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if not hmac.compare_digest(actual, expected):
            raise IntegrityError(
                f"artifact bytes do not match their recorded SHA-256 "
                f"(expected {expected}, got {actual}); nothing was written to {destination}"
            )
        os.chmod(temp, FILE_MODE)
        os.replace(temp, destination)
    except OSError as exc:
        raise StoreUnavailable(f"cannot write {destination}: {exc}") from exc
    finally:
        # After a successful rename the temporary name no longer exists, so this only cleans up
        # after a failure.
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return destination


def _read_chunks(stream: BinaryIO) -> Iterable[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local folder, written once and verified on every download."""

    def __init__(self, root: Path) -> None:
        # Resolved once, so URIs stay absolute and valid if the process later changes folder.
        self._given = Path(root)
        self._root = Path(root).expanduser().resolve()

    def locations(self) -> frozenset[str]:
        return local_names(self._given) | local_names(self._root)

    @property
    def root(self) -> Path:
        return self._root

    def initialize(self) -> None:
        """Create the root folder when missing. Idempotent.

        Raises:
            StoreUnavailable: the folder cannot be created.
        """
        try:
            self._root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create artifact folder {self._root}: {exc}") from exc

    def upload(self, run_id: str, name: str, source: Path) -> StoredObject:
        """Copy ``source`` into ``runs/<run_id>/<name>/<file>`` and return its URI and digest.

        Raises:
            InvalidInput: an id or name breaks the allow-list, or ``source`` is not a readable
                file; nothing is written.
            AlreadyExists: the artifact exists; the stored bytes are left untouched.
            StoreUnavailable: the folder cannot be written (permissions, full disk).
        """
        source = Path(source)
        key = artifact_key(run_id, name, source.name)
        target = self._root.joinpath(*key.split("/"))
        # Checked before opening: opening a FIFO would block until a writer appears.
        if not source.is_file():
            raise InvalidInput(f"artifact source {str(source)!r} is not a regular file")
        try:
            reader = source.open("rb")
        except OSError as exc:
            raise InvalidInput(f"artifact source {str(source)!r} is not readable: {exc}") from exc
        with reader:
            if target.exists():
                raise AlreadyExists(f"artifact {self._uri(target)} exists; artifacts are immutable")
            digest = hashlib.sha256()
            size = 0

            def hashed() -> Iterator[bytes]:
                nonlocal size
                for chunk in _read_chunks(reader):
                    digest.update(chunk)
                    size += len(chunk)
                    yield chunk

            self._write_once(target, hashed(), "artifact")
        return StoredObject(uri=self._uri(target), sha256=digest.hexdigest(), size=size)

    def _write_once(self, target: Path, chunks: Iterable[bytes], what: str) -> None:
        """Write ``chunks`` to a temporary file beside ``target``, then publish it as ``target``.

        Raises:
            StoreUnavailable: the folder or the file cannot be written; no temporary file stays.
        """
        try:
            target.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            handle, temp_name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".part"
            )
        except OSError as exc:
            raise StoreUnavailable(f"cannot write to {target.parent}: {exc}") from exc
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, FILE_MODE)
            self._publish(temp, target)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write {what} {target}: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _publish(self, temp: Path, target: Path) -> None:
        """Give the complete temporary file its final name, refusing to replace anything.

        ``os.link`` fails atomically when the name exists, which ``os.replace`` would not; a
        concurrent upload of the same artifact therefore loses cleanly with ``AlreadyExists``.
        """
        try:
            os.link(temp, target)
            return
        except FileExistsError as exc:
            raise AlreadyExists(
                f"artifact {self._uri(target)} exists; artifacts are immutable"
            ) from exc
        except OSError:
            pass  # the file system has no hard links; fall back to an exclusive create
        try:
            out = target.open("xb")
        except FileExistsError as exc:
            raise AlreadyExists(
                f"artifact {self._uri(target)} exists; artifacts are immutable"
            ) from exc
        with out, temp.open("rb") as reader:
            for chunk in _read_chunks(reader):
                out.write(chunk)
        os.chmod(target, FILE_MODE)

    def download(
        self, uri: str, destination: Path, expected_sha256: str, expected_size: int | None = None
    ) -> Path:
        """Copy the artifact at ``uri`` to ``destination`` after checking its SHA-256 (and size).

        Raises:
            InvalidInput: ``uri`` is not a ``file://`` URI of an artifact under this store's root,
                or ``expected_sha256`` is not a hex SHA-256.
            NotFound: no artifact at ``uri``.
            IntegrityError: the stored bytes do not match ``expected_sha256``; nothing is left at
                ``destination``.
            StoreUnavailable: the artifact or the destination cannot be read or written.
        """
        path = self._path(uri)
        check_sha256(expected_sha256)
        check_size(expected_size)
        try:
            reader = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"no artifact at {uri}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot read artifact {uri}: {exc}") from exc
        with reader:
            try:
                return write_verified(
                    _read_chunks(reader), Path(destination), expected_sha256, expected_size
                )
            except OSError as exc:
                raise StoreUnavailable(f"cannot read artifact {uri}: {exc}") from exc

    def delete(self, uri: str) -> None:
        """Remove the artifact at ``uri``; removing a missing artifact is not an error.

        Raises:
            InvalidInput: ``uri`` does not belong to this store.
            StoreUnavailable: the file cannot be removed.
        """
        path = self._path(uri)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot delete artifact {uri}: {exc}") from exc
        # Prune the now-empty <name> and <run_id> folders; rmdir refuses non-empty ones, so a
        # sibling artifact written concurrently is never lost.
        for folder in (path.parent, path.parent.parent):
            try:
                folder.rmdir()
            except OSError:
                break

    def exists(self, uri: str) -> bool:
        """Whether an artifact exists at ``uri``.

        Raises:
            InvalidInput: ``uri`` does not belong to this store.
        """
        return self._path(uri).is_file()

    # -- data objects ------------------------------------------------------------------------

    def _object_path(self, key: str, *, prefix: bool = False) -> Path:
        path = self._root.joinpath(*object_key(key, prefix=prefix).split("/"))
        # The segments cannot escape, but a symlink planted inside the root could.
        if not path.resolve().is_relative_to(self._root):
            raise InvalidInput(f"object key {key[:64]!r} leads outside the store's root")
        return path

    def put_object(self, key: str, data: bytes) -> str:
        """Write ``data`` to ``<root>/<key>`` (temporary file, then an exclusive link).

        Raises:
            InvalidInput: a bad key. AlreadyExists: the key exists.
            StoreUnavailable: the folder cannot be written.
        """
        target = self._object_path(key)
        self._write_once(target, (data,), "object")
        return self._uri(target)

    def list_objects(self, prefix: str) -> list[str]:
        """Keys of the files under the folder ``prefix`` (temporary files skipped), sorted.

        Raises:
            InvalidInput: a bad prefix. StoreUnavailable: the folder cannot be read.
        """
        folder = self._object_path(prefix, prefix=True)
        if not folder.is_dir():
            return []
        try:
            found = [
                path.relative_to(self._root).as_posix()
                for path in folder.rglob("*")
                if path.is_file() and not path.name.startswith(".")
            ]
        except OSError as exc:
            raise StoreUnavailable(f"cannot list {folder}: {exc}") from exc
        return sorted(found)

    def get_object(self, key: str, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        """The bytes of ``<root>/<key>``.

        Raises:
            InvalidInput: a bad key. NotFound: no such file.
            IntegrityError: larger than ``max_bytes``. StoreUnavailable: unreadable.
        """
        path = self._object_path(key)
        try:
            with path.open("rb") as reader:
                data = reader.read(max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"no object at {key}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot read object {key}: {exc}") from exc
        if len(data) > max_bytes:
            raise IntegrityError(f"object {key} is larger than {max_bytes} bytes")
        return data

    def _uri(self, path: Path) -> str:
        return SCHEME + str(path)

    def _path(self, uri: str) -> Path:
        """Map a URI back to a file under the root, refusing anything that could escape it."""
        if not isinstance(uri, str) or not uri.startswith(SCHEME):
            raise InvalidInput(f"artifact URI must start with {SCHEME}")
        raw = Path(uri[len(SCHEME) :])
        if not raw.is_absolute():
            raise InvalidInput("artifact URI must hold an absolute path")
        try:
            relative = raw.relative_to(self._root)
        except ValueError:
            raise InvalidInput(f"artifact URI is outside the store's root {self._root}") from None
        parts = relative.parts
        if len(parts) != 4 or parts[0] != "runs":
            raise InvalidInput("artifact URI must name runs/<run_id>/<name>/<file>")
        for part, what in zip(
            parts[1:], ("run id", "artifact name", "artifact file name"), strict=True
        ):
            validate_name(part, what)
        path = self._root.joinpath(*parts)
        # The names cannot hold '..' or '/', but a symlink planted inside the root could still
        # point elsewhere; resolving catches that.
        if not path.resolve().is_relative_to(self._root):
            raise InvalidInput(f"artifact URI is outside the store's root {self._root}")
        return path
