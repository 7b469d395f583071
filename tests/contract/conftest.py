"""Backends for the contract suite: every test here runs once per backend.

- ``sqlite``: the embedded default, a real SQLite file and a local artifact folder.
- ``moto``: DynamoDB + S3 on moto in-process (``mock_aws``).
- ``moto_server``: DynamoDB + S3 on a real moto HTTP server on 127.0.0.1, with the SDK configured
  only through ``TRACKING_URI`` / ``ARTIFACT_URI`` / ``AWS_ENDPOINT_URL``, as a user would.

Tables and the bucket are created by the stores' own ``initialize`` (what ``tracking init`` runs),
so the tests use the same key schema declaration as the code.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tracking.artifacts.base import ArtifactStore
from tracking.backends import build_stores
from tracking.config import TrackingConfig, load_config
from tracking.stores.ports.metadata import MetadataStore

BACKENDS = ["sqlite", "moto", "moto_server"]
#: Threads racing on conditional writes: SQLite, and moto in-process with its request handling
#: serialised (below). moto's HTTP server handles requests on parallel threads and is not atomic
#: across them (two conditional puts can both pass), so there it would test the emulator.
RACE_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "moto"], indirect=True)
_counter = itertools.count()


@dataclass
class Backend:
    name: str
    config: TrackingConfig
    metadata: MetadataStore
    artifacts: ArtifactStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    name: str = request.param
    unique = f"t{next(_counter)}"
    if name == "sqlite":
        monkeypatch.setenv("TRACKING_URI", f"sqlite:///{tmp_path / 'tracking.db'}")
        monkeypatch.setenv("ARTIFACT_URI", f"file://{tmp_path / 'artifacts'}")
        yield from _built(name)
    elif name == "moto":
        from moto import mock_aws

        _serialise_moto(monkeypatch)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.setenv("TRACKING_URI", f"dynamodb://{unique}")
        monkeypatch.setenv("ARTIFACT_URI", f"s3://bucket-{unique}/artifacts")
        with mock_aws():
            yield from _built(name)
    else:
        url = request.getfixturevalue("moto_server_url")
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("TRACKING_URI", f"dynamodb://{unique}")
        monkeypatch.setenv("ARTIFACT_URI", f"s3://bucket-{unique}/artifacts")
        yield from _built(name)


def _serialise_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Handle one in-process moto request at a time.

    moto's in-process DynamoDB is not atomic across threads: two conditional writes can both
    pass, and a cancelled transaction restores a snapshot of the whole table, dropping writes
    other threads made meanwhile. Serialising its request handling makes the tests measure our
    conditions and transactions, not the emulator (the HTTP server case runs without this).
    """
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    original = BotocoreStubber.__call__

    def locked(self: BotocoreStubber, *args: object, **kwargs: object) -> object:
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", locked)


def _built(name: str) -> Iterator[Backend]:
    config = load_config()
    metadata, artifacts = build_stores(config)
    metadata.initialize()
    artifacts.initialize()
    try:
        yield Backend(name=name, config=config, metadata=metadata, artifacts=artifacts)
    finally:
        metadata.close()
