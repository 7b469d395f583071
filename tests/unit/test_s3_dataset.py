"""``describe_object``: an S3 object's checksum (or ETag) and version id as a dataset version."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tracking.errors import InvalidInput, NotFound, StoreUnavailable

DATA = b"player_id,sessions_7d\n1,4\n2,0\n"


@pytest.fixture
def s3() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="plain-bucket")
        client.create_bucket(Bucket="versioned-bucket")
        client.put_bucket_versioning(
            Bucket="versioned-bucket", VersioningConfiguration={"Status": "Enabled"}
        )
        yield client


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_sha256_checksum_is_the_hex_digest_of_the_bytes(s3: Any) -> None:
    from tracking.artifacts.s3 import describe_object

    s3.put_object(
        Bucket="plain-bucket",
        Key="data/train.csv",
        Body=DATA,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=_sha256_b64(DATA),
    )

    digest = describe_object("s3://plain-bucket/data/train.csv", client=s3)

    assert digest.digest_algorithm == "sha256"
    assert digest.digest == hashlib.sha256(DATA).hexdigest()
    assert digest.size == len(DATA)
    assert digest.uri == "s3://plain-bucket/data/train.csv"
    assert digest.version_id is None


def test_without_sha256_checksum_the_etag_is_used(s3: Any) -> None:
    from tracking.artifacts.s3 import describe_object

    s3.put_object(Bucket="plain-bucket", Key="train.csv", Body=DATA)

    digest = describe_object("s3://plain-bucket/train.csv", client=s3)

    assert digest.digest_algorithm == "etag"
    assert digest.digest == hashlib.md5(DATA).hexdigest()  # single-part, unencrypted: an MD5
    assert '"' not in digest.digest
    assert digest.size == len(DATA)


def test_versioned_bucket_gives_each_write_its_version_id(s3: Any) -> None:
    from tracking.artifacts.s3 import describe_object

    first = s3.put_object(Bucket="versioned-bucket", Key="train.csv", Body=DATA)["VersionId"]
    one = describe_object("s3://versioned-bucket/train.csv", client=s3)
    second = s3.put_object(Bucket="versioned-bucket", Key="train.csv", Body=DATA + b"3,1\n")
    two = describe_object("s3://versioned-bucket/train.csv", client=s3)

    assert one.version_id == first
    assert two.version_id == second["VersionId"]
    assert one.version_id != two.version_id
    assert one.digest != two.digest


def test_default_client_is_built_when_none_is_given(s3: Any) -> None:
    from tracking.artifacts.s3 import describe_object

    s3.put_object(Bucket="plain-bucket", Key="train.csv", Body=DATA)
    assert describe_object("s3://plain-bucket/train.csv").size == len(DATA)


def test_artifacts_uploaded_by_the_store_describe_as_their_sha256(s3: Any, tmp_path: Any) -> None:
    from tracking.artifacts.s3 import S3ArtifactStore, describe_object

    source = tmp_path / "train.csv"
    source.write_bytes(DATA)
    stored = S3ArtifactStore("plain-bucket", "ml", client=s3).upload("run1", "data", source)

    digest = describe_object(stored.uri, client=s3)

    assert (digest.digest_algorithm, digest.digest) == ("sha256", stored.sha256)


@pytest.mark.parametrize(
    "uri", ["s3://plain-bucket/missing.csv", "s3://no-such-bucket-here/train.csv"]
)
def test_missing_object_is_not_found(s3: Any, uri: str) -> None:
    from tracking.artifacts.s3 import describe_object

    with pytest.raises(NotFound):
        describe_object(uri, client=s3)


@pytest.mark.parametrize("uri", ["s3://", "s3://plain-bucket", "s3://plain-bucket/", "/tmp/x"])
def test_malformed_uri_is_invalid(s3: Any, uri: str) -> None:
    from tracking.artifacts.s3 import describe_object

    with pytest.raises(InvalidInput):
        describe_object(uri, client=s3)


def test_unreachable_endpoint_is_store_unavailable() -> None:
    import boto3
    from botocore.config import Config

    from tracking.artifacts.s3 import S3ArtifactStore, describe_object

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed: every request is refused at once.
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(connect_timeout=1, retries={"max_attempts": 1, "mode": "standard"}),
    )
    with pytest.raises(StoreUnavailable):
        describe_object("s3://plain-bucket/train.csv", client=client)
    store = S3ArtifactStore("plain-bucket", client=client)
    with pytest.raises(StoreUnavailable):
        store.exists("s3://plain-bucket/runs/run1/model/model.json")
    with pytest.raises(StoreUnavailable):
        store.initialize()


def test_initialize_creates_a_bucket_outside_us_east_1() -> None:
    import boto3
    from moto import mock_aws

    from tracking.artifacts.s3 import S3ArtifactStore

    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        store = S3ArtifactStore("eu-bucket", "ml", client=client)
        store.initialize()
        store.initialize()
        location = client.get_bucket_location(Bucket="eu-bucket")["LocationConstraint"]
        assert location == "eu-west-1"
        assert client.get_bucket_versioning(Bucket="eu-bucket")["Status"] == "Enabled"
