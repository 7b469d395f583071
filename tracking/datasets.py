"""Dataset versions: a dataset's version is its content digest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tracking.artifacts.base import CHUNK_SIZE, DatasetDigest
from tracking.errors import InvalidInput


def describe_dataset(path_or_uri: str | os.PathLike[str]) -> DatasetDigest:
    """Return the digest of a local file or folder, or of an ``s3://`` object.

    A folder's digest covers every file's relative path and bytes, in sorted order, so renaming or
    editing any file gives a new version. For ``s3://`` the object's SHA-256 checksum is used when
    S3 has one, else its ETag, with its VersionId when the bucket is versioned.

    Raises:
        InvalidInput: the path does not exist, or the URI's scheme is not supported.
        NotFound: the S3 object does not exist.
    """
    text = os.fspath(path_or_uri)
    if text.startswith("s3://"):
        from tracking.artifacts.s3 import describe_object

        return describe_object(text)
    if "://" in text and not text.startswith("file://"):
        raise InvalidInput(f"dataset {text!r}: use a local path, file:// or s3:// URI")
    path = Path(text.removeprefix("file://")).expanduser()
    if path.is_file():
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
        return DatasetDigest(
            uri=path.resolve().as_uri(),
            digest=digest.hexdigest(),
            digest_algorithm="sha256",
            size=size,
        )
    if path.is_dir():
        digest = hashlib.sha256()
        size = 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = file.relative_to(path).as_posix().encode()
            digest.update(len(relative).to_bytes(8, "big") + relative)
            with file.open("rb") as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
            digest.update(b"\0")
        return DatasetDigest(
            uri=path.resolve().as_uri(),
            digest=digest.hexdigest(),
            digest_algorithm="sha256-tree",
            size=size,
        )
    raise InvalidInput(f"dataset path {text!r} does not exist")
