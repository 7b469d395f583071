"""The ``ArtifactStore`` adapter for S3 (and anything speaking its API, such as moto's server).

Layout: ``s3://<bucket>/<prefix>/runs/<run_id>/<name>/<file>``. Every object carries
``x-amz-meta-sha256`` (hex) and, for single-part uploads, an S3 ``ChecksumSHA256`` that S3 checks
against the bytes it received. Objects are created with ``If-None-Match: *`` so an artifact is
never overwritten, even by two concurrent uploads.

boto3 is imported lazily, and a client is built only when the first request needs one, so
``import tracking`` stays light and tests can start moto before any client exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

from tracking.artifacts.base import (
    CHUNK_SIZE,
    ArtifactStore,
    DatasetDigest,
    StoredObject,
    artifact_key,
    object_key,
)
from tracking.artifacts.local import check_sha256, check_size, write_verified
from tracking.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    StoreUnavailable,
)
from tracking.validation import validate_name

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

SCHEME = "s3://"
#: Above this size an upload goes in parts, so no single request carries gigabytes.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
#: 16 MiB parts allow objects of up to ~160 GB within S3's 10,000-part limit.
PART_SIZE = 16 * 1024 * 1024
#: S3 refuses parts smaller than this, except the last one.
MIN_PART_SIZE = 5 * 1024 * 1024

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
_DIGEST_CODES = frozenset(
    {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
)


def default_client() -> S3Client:
    """Build an S3 client with short timeouts and bounded retries.

    Region, credentials and ``AWS_ENDPOINT_URL`` come from botocore's own resolution (the
    standard AWS environment variables and files), so moto's server can stand in for S3.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=5,
        # total_max_attempts counts the first attempt; botocore's max_attempts would not (3
        # there is 4 attempts, 35 s in the worst case, past API Gateway's 29 s).
        retries={"total_max_attempts": 3, "mode": "standard"},
    )
    return boto3.client("s3", config=config)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return str(status)
    return ""


def _raise_translated(exc: Exception, what: str) -> NoReturn:
    """Re-raise a botocore failure as the SDK's error tree.

    Everything not recognised (AccessDenied, SlowDown after retries, timeouts, unreachable
    endpoints, missing credentials) is ``StoreUnavailable``: the caller cannot fix it by changing
    its input, and retrying later may help.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = _error_code(exc)
        if code in _NOT_FOUND_CODES:
            raise NotFound(f"{what}: no such object") from exc
        if code in {"PreconditionFailed", "412"}:
            raise AlreadyExists(f"{what}: the artifact exists; artifacts are immutable") from exc
        if code == "ConditionalRequestConflict":
            raise Conflict(f"{what}: another upload of the same artifact is in progress") from exc
        if code in _DIGEST_CODES:
            raise IntegrityError(
                f"{what}: S3 received bytes that do not match their SHA-256"
            ) from exc
        if code == "NoSuchBucket":
            raise StoreUnavailable(
                f"{what}: the bucket does not exist (run `tracking init`)"
            ) from exc
        raise StoreUnavailable(f"{what}: S3 answered {code or 'an error'}: {exc}") from exc
    if isinstance(exc, BotoCoreError):
        raise StoreUnavailable(f"{what}: S3 is unreachable: {exc}") from exc
    raise exc


def _is_boto_error(exc: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, ClientError | BotoCoreError)


def _split_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise InvalidInput(f"expected an {SCHEME}<bucket>/<key> URI")
    bucket, _, key = uri[len(SCHEME) :].partition("/")
    if not bucket or not key:
        raise InvalidInput(f"expected an {SCHEME}<bucket>/<key> URI")
    return bucket, key


class S3ArtifactStore(ArtifactStore):
    """Artifacts under an S3 bucket and prefix, written once and verified on every download."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ) -> None:
        """Configure the store; no request is made and no client is built here.

        Args:
            bucket: the bucket holding the artifacts.
            prefix: a key prefix (``a/b``), so several deployments can share a bucket.
            client: a boto3 S3 client; a default one is built on first use when omitted.
            multipart_threshold: files larger than this are uploaded in parts.
            part_size: the size of each part of a multipart upload (5 MiB at least).

        Raises:
            InvalidInput: the bucket is empty, a prefix segment breaks the name allow-list, or
                ``part_size`` is below S3's minimum.
        """
        if not bucket or "/" in bucket:
            raise InvalidInput(f"invalid S3 bucket name {bucket!r}")
        segments = [segment for segment in prefix.strip("/").split("/") if segment]
        for segment in segments:
            validate_name(segment, "S3 prefix segment")
        if part_size < MIN_PART_SIZE:
            raise InvalidInput(f"part_size must be at least {MIN_PART_SIZE} bytes")
        self._bucket = bucket
        self._prefix = "/".join(segments)
        self._client: S3Client | None = client
        self._client_lock = threading.Lock()
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size

    def locations(self) -> frozenset[str]:
        return frozenset({self._bucket})

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def client(self) -> S3Client:
        """The injected client, or a default one built on first use (thread-safe)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = default_client()
        return self._client

    # -- lifecycle ---------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the bucket when missing, with versioning on and public access blocked.

        Idempotent. An existing bucket is left as its owner configured it.

        Raises:
            Conflict: the bucket name belongs to another AWS account.
            StoreUnavailable: S3 failed, or access was denied.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client
        try:
            client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                _raise_translated(exc, f"checking bucket {self._bucket}")
        except BotoCoreError as exc:
            _raise_translated(exc, f"checking bucket {self._bucket}")
        region = client.meta.region_name
        try:
            # us-east-1 is the one region that refuses an explicit LocationConstraint.
            if region and region != "us-east-1":
                client.create_bucket(
                    Bucket=self._bucket,
                    CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                )
            else:
                client.create_bucket(Bucket=self._bucket)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "BucketAlreadyOwnedByYou":
                return  # created concurrently by another `tracking init`; configured there
            if code == "BucketAlreadyExists":
                raise Conflict(
                    f"S3 bucket {self._bucket!r} belongs to another account; choose another name"
                ) from exc
            _raise_translated(exc, f"creating bucket {self._bucket}")
        except BotoCoreError as exc:
            _raise_translated(exc, f"creating bucket {self._bucket}")
        try:
            # Versioning keeps every artifact's bytes recoverable even if a key is deleted.
            client.put_bucket_versioning(
                Bucket=self._bucket, VersioningConfiguration={"Status": "Enabled"}
            )
            client.put_public_access_block(
                Bucket=self._bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )
        except (ClientError, BotoCoreError) as exc:
            _raise_translated(exc, f"configuring bucket {self._bucket}")

    # -- artifacts ---------------------------------------------------------------------------

    def upload(self, run_id: str, name: str, source: Path) -> StoredObject:
        """Upload ``source`` as the run's artifact ``name``; refuse to overwrite.

        Files up to ``multipart_threshold`` go in one ``PutObject`` with ``ChecksumSHA256``, so S3
        rejects bytes damaged in transit; larger files go in parts, each with its own checksum.

        Raises:
            InvalidInput: an id or name breaks the allow-list, or ``source`` is not a readable
                file; nothing is written.
            AlreadyExists: the artifact exists; the stored bytes are left untouched.
            Conflict: another upload of the same artifact is in progress.
            IntegrityError: S3 received bytes that do not match their checksum, or the source
                changed while it was being uploaded; nothing is written.
            StoreUnavailable: S3 failed, timed out, denied access, or the bucket is missing.
        """
        source = Path(source)
        key = self._key(artifact_key(run_id, name, source.name))
        uri = f"{SCHEME}{self._bucket}/{key}"
        # Checked before opening: opening a FIFO would block until a writer appears.
        if not source.is_file():
            raise InvalidInput(f"artifact source {str(source)!r} is not a regular file")
        try:
            reader = source.open("rb")
            size = source.stat().st_size
        except OSError as exc:
            raise InvalidInput(f"artifact source {str(source)!r} is not readable: {exc}") from exc
        with reader:
            try:
                if size > self._multipart_threshold:
                    return self._upload_parts(reader, key, uri)
                return self._upload_single(reader, key, uri)
            except OSError as exc:
                raise StoreUnavailable(f"uploading {uri}: cannot read {source}: {exc}") from exc

    def _upload_single(self, reader: BinaryIO, key: str, uri: str) -> StoredObject:
        # One read into memory (bounded by the threshold) means the digest and the bytes sent
        # are the same bytes even if the file changes meanwhile, and retries can resend them.
        data = reader.read()
        sha256 = self._put_new(key, data, f"uploading {uri}")
        return StoredObject(uri=uri, sha256=sha256, size=len(data))

    def _put_new(self, key: str, data: bytes, doing: str) -> str:
        """``PutObject`` of ``data`` unless ``key`` exists, S3 checking its SHA-256 (hex, returned).

        Raises:
            AlreadyExists: the key exists. StoreUnavailable: S3 failed (``doing`` says what).
        """
        digest = hashlib.sha256(data)
        try:
            self.client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                # Naming the algorithm as well as its value makes S3 (and moto) store the checksum
                # and return it from HeadObject with ChecksumMode=ENABLED.
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(digest.digest()),
                IfNoneMatch="*",
                Metadata={"sha256": digest.hexdigest()},
                ContentType="application/octet-stream",
            )
        except Exception as exc:
            if _is_boto_error(exc):
                _raise_translated(exc, doing)
            raise
        return digest.hexdigest()

    def _upload_parts(self, reader: BinaryIO, key: str, uri: str) -> StoredObject:
        # The whole-file digest goes into the object's metadata, which S3 takes at the start of a
        # multipart upload, so it is computed first; the second pass re-hashes what it sends and
        # aborts if the file changed in between.
        first = hashlib.sha256()
        while chunk := reader.read(CHUNK_SIZE):
            first.update(chunk)
        expected = first.hexdigest()
        reader.seek(0)
        client = self.client
        try:
            upload_id = client.create_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                ChecksumAlgorithm="SHA256",
                Metadata={"sha256": expected},
                ContentType="application/octet-stream",
            )["UploadId"]
        except Exception as exc:
            if _is_boto_error(exc):
                _raise_translated(exc, f"uploading {uri}")
            raise
        try:
            second = hashlib.sha256()
            size = 0
            parts: list[CompletedPartTypeDef] = []
            while part := reader.read(self._part_size):
                second.update(part)
                size += len(part)
                checksum = _b64(hashlib.sha256(part).digest())
                number = len(parts) + 1
                answer = client.upload_part(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
                parts.append(
                    {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}
                )
            if second.hexdigest() != expected:
                raise IntegrityError(f"uploading {uri}: the source file changed during the upload")
            client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except Exception as exc:
            self._abort(key, upload_id)
            if _is_boto_error(exc):
                _raise_translated(exc, f"uploading {uri}")
            raise
        return StoredObject(uri=uri, sha256=expected, size=size)

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            # The original failure matters more; a lifecycle rule cleans up stray parts.
            if not _is_boto_error(exc):
                raise

    def download(
        self, uri: str, destination: Path, expected_sha256: str, expected_size: int | None = None
    ) -> Path:
        """Stream the artifact at ``uri`` to ``destination`` after checking its SHA-256 (and size).

        Raises:
            InvalidInput: ``uri`` is not in this store's bucket and prefix, or ``expected_sha256``
                is not a hex SHA-256.
            NotFound: no object at ``uri``.
            IntegrityError: the bytes do not match ``expected_sha256``; nothing is left at
                ``destination``.
            StoreUnavailable: S3 failed, timed out or denied access, or the destination cannot
                be written.
        """
        key = self._own_key(uri)
        expected = check_sha256(expected_sha256)
        check_size(expected_size)
        try:
            answer = self.client.get_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            if _is_boto_error(exc):
                _raise_translated(exc, f"downloading {uri}")
            raise
        body = answer["Body"]
        try:
            recorded = answer.get("Metadata", {}).get("sha256")
            # The recorded digest is only a shortcut to fail before transferring the bytes; the
            # bytes themselves are always hashed below.
            if recorded and recorded.lower() != expected:
                raise IntegrityError(
                    f"artifact {uri} was stored with SHA-256 {recorded}, expected {expected}"
                )
            length = answer.get("ContentLength")
            if expected_size is not None and length is not None and length != expected_size:
                raise IntegrityError(f"artifact {uri} has {length} bytes, expected {expected_size}")
            return write_verified(_body_chunks(body), Path(destination), expected, expected_size)
        except Exception as exc:
            if _is_boto_error(exc):
                _raise_translated(exc, f"downloading {uri}")
            raise
        finally:
            body.close()

    def delete(self, uri: str) -> None:
        """Remove the artifact at ``uri``; removing a missing artifact is not an error.

        On a versioned bucket this adds a delete marker, so the bytes stay recoverable.

        Raises:
            InvalidInput: ``uri`` is not in this store's bucket and prefix.
            StoreUnavailable: S3 failed, timed out or denied access.
        """
        key = self._own_key(uri)
        try:
            self.client.delete_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            if _is_boto_error(exc):
                _raise_translated(exc, f"deleting {uri}")
            raise

    def exists(self, uri: str) -> bool:
        """Whether an artifact exists at ``uri``.

        Raises:
            InvalidInput: ``uri`` is not in this store's bucket and prefix.
            StoreUnavailable: S3 failed, timed out or denied access.
        """
        key = self._own_key(uri)
        try:
            self.client.head_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            if _is_boto_error(exc):
                try:
                    _raise_translated(exc, f"checking {uri}")
                except NotFound:
                    return False
            raise
        return True

    # -- data objects ------------------------------------------------------------------------

    def put_object(self, key: str, data: bytes) -> str:
        """One ``PutObject`` with ``If-None-Match: *`` and an S3-checked SHA-256.

        Raises:
            InvalidInput: a bad key. AlreadyExists: the key exists.
            StoreUnavailable: S3 failed.
        """
        full = self._key(object_key(key))
        uri = f"{SCHEME}{self._bucket}/{full}"
        self._put_new(full, data, f"writing {uri}")
        return uri

    def list_objects(self, prefix: str) -> list[str]:
        """``ListObjectsV2`` under ``<prefix>/``, every page, as relative keys, sorted.

        Raises:
            InvalidInput: a bad prefix. StoreUnavailable: S3 failed.
        """
        folder = self._key(object_key(prefix, prefix=True)) + "/"
        strip = len(self._prefix) + 1 if self._prefix else 0
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=folder):
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        except Exception as exc:
            if _is_boto_error(exc):
                _raise_translated(exc, f"listing {folder}")
            raise
        return sorted(keys)

    def get_object(self, key: str, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        """The object's bytes (refused before the transfer when S3 reports it too large).

        Raises:
            InvalidInput: a bad key. NotFound: no such object.
            IntegrityError: larger than ``max_bytes``. StoreUnavailable: S3 failed.
        """
        full = self._key(object_key(key))
        try:
            answer = self.client.get_object(Bucket=self._bucket, Key=full)
            body = answer["Body"]
            try:
                length = answer.get("ContentLength")
                if length is not None and length > max_bytes:
                    raise IntegrityError(f"object {key} is larger than {max_bytes} bytes")
                data: bytes = body.read(max_bytes + 1)
            finally:
                body.close()
        except Exception as exc:
            if _is_boto_error(exc):
                _raise_translated(exc, f"reading {key}")
            raise
        if len(data) > max_bytes:
            raise IntegrityError(f"object {key} is larger than {max_bytes} bytes")
        return data

    # -- keys --------------------------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return f"{self._prefix}/{relative}" if self._prefix else relative

    def _own_key(self, uri: str) -> str:
        """The key of ``uri`` if it names an artifact of this bucket and prefix."""
        bucket, key = _split_uri(uri)
        if bucket != self._bucket:
            raise InvalidInput(f"artifact URI is not in bucket {self._bucket!r}")
        relative = key
        if self._prefix:
            if not key.startswith(self._prefix + "/"):
                raise InvalidInput(f"artifact URI is not under prefix {self._prefix!r}")
            relative = key[len(self._prefix) + 1 :]
        parts = relative.split("/")
        if len(parts) != 4 or parts[0] != "runs":
            raise InvalidInput("artifact URI must name runs/<run_id>/<name>/<file>")
        for part, what in zip(
            parts[1:], ("run id", "artifact name", "artifact file name"), strict=True
        ):
            validate_name(part, what)
        return key


def _body_chunks(body: Any) -> Iterator[bytes]:
    yield from body.iter_chunks(CHUNK_SIZE)


def describe_object(uri: str, client: Any | None = None) -> DatasetDigest:
    """Describe the S3 object at ``uri`` as a dataset version, without downloading it.

    The digest is, in order of preference:

    - ``sha256``: the hex SHA-256 of the object's bytes, when S3 holds a full-object SHA-256
      checksum (a single-part upload with ``ChecksumAlgorithm=SHA256``). It equals the digest of
      the same file logged from disk.
    - ``s3-sha256-composite``: S3's checksum of the parts' SHA-256 checksums (multipart uploads),
      as S3 returns it (``<base64>-<parts>``); stable for the object, not comparable to a file's.
    - ``etag``: the ETag without quotes (an MD5 only for single-part unencrypted uploads, so it
      is labelled as what it is).

    ``version_id`` is set when the bucket is versioned.

    Raises:
        InvalidInput: ``uri`` is not ``s3://<bucket>/<key>``.
        NotFound: no such object or bucket.
        StoreUnavailable: S3 failed, timed out or denied access.
    """
    bucket, key = _split_uri(uri)
    s3 = client if client is not None else default_client()
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        # Unlike the artifact store's own bucket, a dataset's bucket is the caller's input.
        if _error_code(exc) == "NoSuchBucket":
            raise NotFound(f"describing {uri}: no such bucket") from exc
        if _is_boto_error(exc):
            _raise_translated(exc, f"describing {uri}")
        raise
    checksum = head.get("ChecksumSHA256")
    checksum_type = head.get("ChecksumType")
    digest: str | None = None
    algorithm = ""
    if checksum:
        composite = checksum_type == "COMPOSITE" or (checksum_type is None and "-" in checksum)
        if composite:
            digest, algorithm = checksum, "s3-sha256-composite"
        else:
            try:
                raw = base64.b64decode(checksum, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) == hashlib.sha256().digest_size:
                digest, algorithm = raw.hex(), "sha256"
    if digest is None:
        etag = str(head.get("ETag", "")).strip('"')
        if not etag:
            raise StoreUnavailable(f"describing {uri}: S3 returned neither a checksum nor an ETag")
        digest, algorithm = etag, "etag"
    version_id = head.get("VersionId")
    # An unversioned object on a bucket whose versioning was suspended reports "null".
    if version_id == "null":
        version_id = None
    return DatasetDigest(
        uri=uri,
        digest=digest,
        digest_algorithm=algorithm,
        size=head.get("ContentLength"),
        version_id=version_id,
    )
