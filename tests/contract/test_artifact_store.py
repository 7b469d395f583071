"""The ``ArtifactStore`` contract, run against a local folder, moto in-process and moto's server."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.contract.conftest import Backend
from tracking.artifacts.base import ArtifactStore, StoredObject
from tracking.artifacts.local import write_verified
from tracking.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    TrackingError,
)

# Spans several 1 MiB read chunks and ends mid-chunk.
PAYLOAD = os.urandom(2 * 1024 * 1024 + 12345)


def _file(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _s3_location(backend: Backend) -> tuple[str, str]:
    parsed = urlparse(backend.config.artifact_uri)
    return parsed.netloc, parsed.path.strip("/")


def _local_root(backend: Backend) -> Path:
    return Path(backend.config.artifact_uri.removeprefix("file://")).resolve()


def _stored(backend: Backend) -> list[str]:
    """Everything the store holds, temporary files and unfinished multipart uploads included."""
    if backend.name == "sqlite":
        root = _local_root(backend)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    import boto3

    bucket, _ = _s3_location(backend)
    client = boto3.client("s3")
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sorted(keys + [f"(unfinished) {item['Key']}" for item in uploads])


def _tamper(backend: Backend, uri: str, data: bytes) -> None:
    if backend.name == "sqlite":
        Path(uri.removeprefix("file://")).write_bytes(data)
        return
    import boto3

    parsed = urlparse(uri)
    boto3.client("s3").put_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), Body=data)


def _store_uri_scheme(backend: Backend) -> str:
    return "file://" if backend.name == "sqlite" else "s3://"


def test_round_trip_records_sha256_and_size(backend: Backend, tmp_path: Path) -> None:
    source = _file(tmp_path / "src", "model.json", PAYLOAD)

    stored = backend.artifacts.upload("run1", "model", source)

    assert stored.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert stored.size == len(PAYLOAD)
    assert stored.uri.startswith(_store_uri_scheme(backend))
    assert stored.uri.endswith("/runs/run1/model/model.json")
    assert backend.artifacts.exists(stored.uri)
    destination = tmp_path / "out" / "nested" / "model.json"
    assert backend.artifacts.download(stored.uri, destination, stored.sha256) == destination
    assert destination.read_bytes() == PAYLOAD
    assert sorted(p.name for p in destination.parent.iterdir()) == ["model.json"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_local_uris_are_absolute_file_paths(backend: Backend, tmp_path: Path) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "m.bin", b"x"))
    path = Path(stored.uri.removeprefix("file://"))
    assert path.is_absolute()
    assert path.read_bytes() == b"x"
    assert path.is_relative_to(_local_root(backend))


@pytest.mark.parametrize("backend", ["moto", "moto_server"], indirect=True)
def test_s3_uris_hold_bucket_and_prefix(backend: Backend, tmp_path: Path) -> None:
    bucket, prefix = _s3_location(backend)
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "m.bin", b"x"))
    assert stored.uri == f"s3://{bucket}/{prefix}/runs/run1/model/m.bin"


def test_empty_file_round_trips(backend: Backend, tmp_path: Path) -> None:
    stored = backend.artifacts.upload("run1", "empty", _file(tmp_path, "empty.txt", b""))
    assert stored.size == 0
    assert stored.sha256 == hashlib.sha256(b"").hexdigest()
    destination = tmp_path / "out" / "empty.txt"
    backend.artifacts.download(stored.uri, destination, stored.sha256)
    assert destination.read_bytes() == b""


def test_upload_twice_is_refused_and_keeps_the_first_bytes(
    backend: Backend, tmp_path: Path
) -> None:
    source = _file(tmp_path, "model.json", b"first")
    first = backend.artifacts.upload("run1", "model", source)
    source.write_bytes(b"second, different bytes")

    with pytest.raises(AlreadyExists):
        backend.artifacts.upload("run1", "model", source)

    destination = tmp_path / "out" / "model.json"
    backend.artifacts.download(first.uri, destination, first.sha256)
    assert destination.read_bytes() == b"first"
    assert len(_stored(backend)) == 1


def test_concurrent_uploads_of_one_artifact_store_exactly_one(
    backend: Backend, tmp_path: Path
) -> None:
    sources = [_file(tmp_path / str(i), "model.json", f"writer {i}".encode()) for i in range(4)]
    results: list[StoredObject | TrackingError | None] = [None] * len(sources)
    barrier = threading.Barrier(len(sources))

    def upload(index: int) -> None:
        barrier.wait()
        try:
            results[index] = backend.artifacts.upload("run1", "model", sources[index])
        except TrackingError as exc:
            results[index] = exc

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(sources))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [r for r in results if isinstance(r, StoredObject)]
    assert len(winners) == 1, results
    losers = [r for r in results if not isinstance(r, StoredObject)]
    assert all(isinstance(r, AlreadyExists | Conflict) for r in losers), losers
    winner = winners[0]
    destination = tmp_path / "out" / "model.json"
    backend.artifacts.download(winner.uri, destination, winner.sha256)
    assert destination.read_bytes().startswith(b"writer ")
    assert len(_stored(backend)) == 1


def test_tampered_bytes_raise_integrity_error_and_leave_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", PAYLOAD))
    _tamper(backend, stored.uri, b"tampered" + PAYLOAD[8:])
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(IntegrityError):
        backend.artifacts.download(stored.uri, out / "model.json", stored.sha256)

    assert list(out.iterdir()) == []


def test_wrong_expected_digest_raises_integrity_error(backend: Backend, tmp_path: Path) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", b"bytes"))
    destination = tmp_path / "out" / "model.json"
    destination.parent.mkdir()
    with pytest.raises(IntegrityError):
        backend.artifacts.download(stored.uri, destination, hashlib.sha256(b"other").hexdigest())
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []


def test_integrity_failure_keeps_an_existing_destination(backend: Backend, tmp_path: Path) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", b"good"))
    _tamper(backend, stored.uri, b"evil")
    destination = _file(tmp_path / "cache", "model.json", b"previously verified")
    with pytest.raises(IntegrityError):
        backend.artifacts.download(stored.uri, destination, stored.sha256)
    assert destination.read_bytes() == b"previously verified"
    assert [p.name for p in destination.parent.iterdir()] == ["model.json"]


def test_an_inflated_artifact_is_refused_by_its_recorded_size(
    backend: Backend, tmp_path: Path
) -> None:
    """An attacker who grows an artifact cannot make each model load move that many bytes."""
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", PAYLOAD))
    _tamper(backend, stored.uri, PAYLOAD + b"\0" * (3 * 1024 * 1024))
    destination = tmp_path / "out" / "model.json"
    destination.parent.mkdir()
    with pytest.raises(IntegrityError, match="bytes"):
        backend.artifacts.download(stored.uri, destination, stored.sha256, stored.size)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []


def test_the_size_limit_stops_reading_early(tmp_path: Path) -> None:
    consumed = []

    def chunks() -> Iterator[bytes]:
        for index in range(1000):
            consumed.append(index)
            yield b"x" * 1024

    with pytest.raises(IntegrityError):
        write_verified(chunks(), tmp_path / "model.json", "0" * 64, expected_size=4096)
    assert len(consumed) == 5
    assert list(tmp_path.iterdir()) == []


def test_the_recorded_size_accepts_the_right_bytes(backend: Backend, tmp_path: Path) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", PAYLOAD))
    destination = tmp_path / "out" / "model.json"
    backend.artifacts.download(stored.uri, destination, stored.sha256, stored.size)
    assert destination.read_bytes() == PAYLOAD
    with pytest.raises(InvalidInput):
        backend.artifacts.download(stored.uri, tmp_path / "x" / "m.json", stored.sha256, -1)


@pytest.mark.parametrize("digest", ["", "abc", "g" * 64, "0" * 63])
def test_malformed_expected_digest_is_invalid(
    backend: Backend, tmp_path: Path, digest: str
) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", b"bytes"))
    destination = tmp_path / "out" / "model.json"
    with pytest.raises(InvalidInput):
        backend.artifacts.download(stored.uri, destination, digest)
    assert not destination.exists()


def test_download_of_a_missing_artifact_is_not_found(backend: Backend, tmp_path: Path) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", b"x"))
    missing = stored.uri.replace("/model.json", "/other.json")
    destination = tmp_path / "out" / "other.json"
    with pytest.raises(NotFound):
        backend.artifacts.download(missing, destination, hashlib.sha256(b"x").hexdigest())
    assert not destination.exists()
    assert not backend.artifacts.exists(missing)


def _foreign_uris(backend: Backend, own_uri: str) -> list[str]:
    """URIs that must never be served by ``backend``: other places, escapes, other schemes."""
    base = own_uri.rsplit("/runs/", 1)[0]
    uris = [
        "",
        "model.json",
        "http://example.com/runs/run1/model/model.json",
        f"{base}/runs/run1/model/../../../../secret.txt",
        f"{base}/runs/run1/../run2/model.json",
        f"{base}/runs/run1/model/model.json/extra",
        f"{base}/runs/run1/model",
        f"{base}/other/run1/model/model.json",
        f"{base}/runs/run1/model/.hidden",
        f"{base}/runs/{'r' * 129}/model/model.json",
        f"{base}/runs/run1/model/a%2F..%2Fb",
    ]
    if backend.name == "sqlite":
        root = _local_root(backend)
        uris += [
            "file:///etc/passwd",
            f"file://{root.parent}/runs/run1/model/model.json",
            f"file://{root}-sibling/runs/run1/model/model.json",
            "file://relative/runs/run1/model/model.json",
            "s3://bucket-x/artifacts/runs/run1/model/model.json",
        ]
    else:
        bucket, prefix = _s3_location(backend)
        uris += [
            f"s3://other-{bucket}/{prefix}/runs/run1/model/model.json",
            f"s3://{bucket}/runs/run1/model/model.json",
            f"s3://{bucket}/other-prefix/runs/run1/model/model.json",
            f"s3://{bucket}/{prefix}x/runs/run1/model/model.json",
            f"s3://{bucket}",
            "s3://",
            "file:///etc/passwd",
        ]
    return uris


def test_uris_outside_the_store_are_invalid(backend: Backend, tmp_path: Path) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", b"x"))
    digest = hashlib.sha256(b"x").hexdigest()
    before = _stored(backend)
    out = tmp_path / "out"
    out.mkdir()

    for uri in _foreign_uris(backend, stored.uri):
        with pytest.raises(InvalidInput):
            backend.artifacts.download(uri, out / "model.json", digest)
        with pytest.raises(InvalidInput):
            backend.artifacts.exists(uri)
        with pytest.raises(InvalidInput):
            backend.artifacts.delete(uri)

    assert list(out.iterdir()) == []
    assert _stored(backend) == before


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_symlink_escaping_the_root_is_refused(backend: Backend, tmp_path: Path) -> None:
    secret = _file(tmp_path / "outside", "secret.txt", b"secret")
    link_folder = _local_root(backend) / "runs" / "run1" / "model"
    link_folder.mkdir(parents=True)
    (link_folder / "secret.txt").symlink_to(secret)
    uri = f"file://{link_folder / 'secret.txt'}"
    destination = tmp_path / "out" / "secret.txt"
    with pytest.raises(InvalidInput):
        backend.artifacts.download(uri, destination, hashlib.sha256(b"secret").hexdigest())
    assert not destination.exists()


@pytest.mark.parametrize(
    ("run_id", "name", "filename"),
    [
        ("run1", "a/b", "model.json"),
        ("run1", "..", "model.json"),
        ("..", "model", "model.json"),
        ("run1/..", "model", "model.json"),
        ("run1", "a..b", "model.json"),
        ("run1", "x" * 129, "model.json"),
        ("r" * 129, "model", "model.json"),
        ("", "model", "model.json"),
        ("run1", "", "model.json"),
        ("run1", ".hidden", "model.json"),
        ("run1", "white space", "model.json"),
        ("run1", "model", "bad name.json"),
        ("run1", "model", "x" * 129),
        ("run1", "model", "..json"),
    ],
)
def test_invalid_names_write_nothing(
    backend: Backend, tmp_path: Path, run_id: str, name: str, filename: str
) -> None:
    source = _file(tmp_path, filename, b"bytes")
    with pytest.raises(InvalidInput):
        backend.artifacts.upload(run_id, name, source)
    assert _stored(backend) == []


def test_missing_or_unreadable_source_writes_nothing(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        backend.artifacts.upload("run1", "model", tmp_path / "missing.json")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    with pytest.raises(InvalidInput):
        backend.artifacts.upload("run1", "model", folder)
    if os.geteuid() != 0:  # root reads any file, so the permission check cannot fail
        locked = _file(tmp_path, "locked.json", b"x")
        locked.chmod(0)
        with pytest.raises(InvalidInput):
            backend.artifacts.upload("run1", "model", locked)
    assert _stored(backend) == []


def test_exists_and_delete(backend: Backend, tmp_path: Path) -> None:
    source = _file(tmp_path, "model.json", b"v1")
    stored = backend.artifacts.upload("run1", "model", source)
    sibling = backend.artifacts.upload("run1", "plot", _file(tmp_path, "roc.png", b"png"))
    assert backend.artifacts.exists(stored.uri)

    backend.artifacts.delete(stored.uri)

    assert not backend.artifacts.exists(stored.uri)
    assert backend.artifacts.exists(sibling.uri)
    with pytest.raises(NotFound):
        backend.artifacts.download(stored.uri, tmp_path / "out" / "model.json", stored.sha256)
    backend.artifacts.delete(stored.uri)  # deleting twice is harmless: it undoes a failed upload
    # Once the failed upload is undone, the artifact can be written again.
    source.write_bytes(b"v2")
    again = backend.artifacts.upload("run1", "model", source)
    assert again.uri == stored.uri
    assert again.sha256 == hashlib.sha256(b"v2").hexdigest()


def test_initialize_is_idempotent(backend: Backend, tmp_path: Path) -> None:
    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", b"x"))
    backend.artifacts.initialize()
    backend.artifacts.initialize()
    assert backend.artifacts.exists(stored.uri)


@pytest.mark.parametrize("backend", ["moto", "moto_server"], indirect=True)
def test_s3_objects_carry_their_sha256(backend: Backend, tmp_path: Path) -> None:
    import boto3

    stored = backend.artifacts.upload("run1", "model", _file(tmp_path, "model.json", PAYLOAD))
    parsed = urlparse(stored.uri)
    head = boto3.client("s3").head_object(
        Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), ChecksumMode="ENABLED"
    )
    assert head["Metadata"]["sha256"] == stored.sha256
    assert bytes.fromhex(stored.sha256) == base64.b64decode(head["ChecksumSHA256"])


@pytest.mark.parametrize("backend", ["moto", "moto_server"], indirect=True)
def test_s3_bucket_is_versioned_after_initialize(backend: Backend) -> None:
    import boto3

    bucket, _ = _s3_location(backend)
    assert boto3.client("s3").get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


@pytest.mark.parametrize("backend", ["moto", "moto_server"], indirect=True)
def test_s3_multipart_upload_round_trips(backend: Backend, tmp_path: Path) -> None:
    from tracking.artifacts.s3 import MIN_PART_SIZE, S3ArtifactStore

    bucket, prefix = _s3_location(backend)
    store: ArtifactStore = S3ArtifactStore(
        bucket, prefix, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE
    )
    data = os.urandom(2 * MIN_PART_SIZE + 1000)
    source = _file(tmp_path, "big.bin", data)

    stored = store.upload("run1", "big", source)

    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    with pytest.raises(AlreadyExists):
        store.upload("run1", "big", source)
    destination = tmp_path / "out" / "big.bin"
    # The default store reads what the multipart store wrote.
    backend.artifacts.download(stored.uri, destination, stored.sha256)
    assert destination.read_bytes() == data
    assert _stored(backend) == [f"{prefix}/runs/run1/big/big.bin"]
