"""The DynamoDB metadata store, on pynamodb.

The tables are declared in ``dynamodb_schema`` (see its docstring for the item layout). Everything
a run owns lives in the run's partition of the tracking table, one small item per param, tag,
latest metric, dataset or artifact record, so ``get_run`` is one Query and no item grows with the
run. Metric history is one item per point in the metrics table.

The model registry lives in the same table, one partition per model: the model item, one item
per version, alias and history entry. Each registration and each alias move is one
TransactWriteItems whose conditions (the model's latest version number, each alias's revision)
make it all-or-nothing against concurrent writers.

pynamodb caches one connection per ``Model`` class, and its classes carry their table name, so the
classes are built per store instance (``_Models``) rather than at import: importing this module
creates no client, moto can start first, and two stores with different prefixes never share a
table binding.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import ListAttribute, MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import (
    DeleteError,
    DoesNotExist,
    PutError,
    PynamoDBException,
    TransactWriteError,
    UpdateError,
)
from pynamodb.expressions.condition import Condition, size
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from tracking.entities import (
    AliasChange,
    AliasState,
    Artifact,
    Dataset,
    Experiment,
    FeatureSpec,
    Flavor,
    HistoryAction,
    Metric,
    ModelVersion,
    Page,
    RegisteredModel,
    Run,
    RunStatus,
    Stage,
)
from tracking.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    TrackingError,
)
from tracking.stores import dynamodb_schema as schema
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tracking.stores.idempotency_base import IdempotencyRecord
from tracking.stores.registry_base import AliasWrite, check_tags
from tracking.stores.store import TrackingStore

_T = TypeVar("_T")

DEFAULT_REGION = "us-east-1"
#: DynamoDB's limits on one BatchWriteItem and one TransactWriteItems request.
BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100
TRANSACTION_LIMIT = 100
#: Re-sends of ``UnprocessedItems`` before a batch gives up with ``StoreUnavailable``. With the
#: backoff below the worst case per chunk is about 4 s of sleeping.
UNPROCESSED_RETRY_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
#: Our bound on one item, under DynamoDB's 400 KB limit with room to spare. Items that grow
#: (the tag maps of models and versions) are checked against it before every write.
MAX_ITEM_BYTES = 350 * 1024
#: Reads and conditional writes ``_update_tagged`` tries before giving up with ``Conflict``.
UPDATE_ATTEMPTS = 5
#: Partition queries ``list_runs`` sends at once to assemble a page of complete runs.
LIST_RUNS_CONCURRENCY = 8
#: How long ``initialize`` waits for new tables to become ACTIVE.
TABLE_ACTIVE_TIMEOUT_SECONDS = 300.0

_EXPERIMENTS_GSI_PK = "EXPERIMENTS"
_EXPERIMENT_SK = "EXP"
_RUN_SK = "RUN"
_PARAM = "PARAM#"
_TAG = "TAG#"
_METRIC = "METRIC#"
_DATASET = "DATASET#"
_ARTIFACT = "ARTIFACT#"
_MODELS_GSI_PK = "MODELS"
_MODEL_SK = "MODEL"
_VERSION = "V#"
_ALIAS = "ALIAS#"
_HISTORY = "HIST#"
_IDEMPOTENCY = "IDEMPOTENCY"
#: Runs are listed newest first by querying gsi1 forward on ``INVERSION - start_time``, so equal
#: start times fall back to ascending run id, as in the SQLite store's ORDER BY.
_START_TIME_INVERSION = 10**16 - 1
_START_TIME_DIGITS = 16

_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)


def _experiment_pk(name: str) -> str:
    return f"EXP#{name}"


def _run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def _runs_gsi_pk(experiment_id: str) -> str:
    return f"RUNS#{experiment_id}"


def _runs_gsi_sk(start_time: int, run_id: str) -> str:
    if isinstance(start_time, bool) or not 0 <= start_time <= _START_TIME_INVERSION:
        raise InvalidInput("run start_time must be non-negative integer milliseconds")
    return f"{_START_TIME_INVERSION - start_time:0{_START_TIME_DIGITS}d}#{run_id}"


def _model_pk(name: str) -> str:
    return f"MODEL#{name}"


def _version_sk(version: int) -> str:
    # Zero-padded so that the sort key orders versions numerically.
    return f"{_VERSION}{version:010d}"


def _history_sk(timestamp: int, clock_ns: int, change_id: str) -> str:
    return f"{_HISTORY}{timestamp:013d}#{clock_ns:019d}#{change_id}"


def _idempotency_pk(key: str) -> str:
    return f"{_IDEMPOTENCY}#{key}"


def _metric_pk(run_id: str, key: str) -> str:
    return f"{run_id}#{key}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _resolve_region(region: str | None) -> str:
    if region:
        return region
    # botocore's own "region" setting reads AWS_DEFAULT_REGION and the profile, but not
    # AWS_REGION, which is the one Lambda and most containers set.
    from_env = os.environ.get("AWS_REGION")
    if from_env:
        return from_env
    configured = botocore.session.get_session().get_config_variable("region")
    return str(configured) if configured else DEFAULT_REGION


# -- item size ----------------------------------------------------------------------------------


def _value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value by DynamoDB's rules (see "DynamoDB item sizes and formats")."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(key.encode()) + _value_size(v) for key, v in data.items())
    if kind == "SS":
        return sum(len(element.encode()) for element in data)
    if kind == "NS":
        return sum(_number_size(element) for element in data)
    return sum(len(element) for element in data)  # BS


def _number_size(text: str) -> int:
    mantissa = text.lower().split("e")[0].lstrip("+-").replace(".", "")
    digits = len(mantissa.strip("0")) or 1
    return (digits + 1) // 2 + 1


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size DynamoDB counts for a serialized item: names plus values, in bytes."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _check_item_size(item: Mapping[str, Mapping[str, Any]], what: str) -> None:
    found = item_size(item)
    if found > MAX_ITEM_BYTES:
        raise InvalidInput(
            f"{what} would take {found} bytes in DynamoDB; the limit is {MAX_ITEM_BYTES} bytes "
            "per item (use fewer or shorter tags, metadata or signature entries)"
        )


# -- error translation ------------------------------------------------------------------------


def _error_field(error: BaseException, name: str) -> str | None:
    """``Error.Code`` / ``Error.Message`` of the service's answer, if there was one.

    Not pynamodb's ``cause_response_code``: it assumes ``cause.response`` is a dict, but a
    ``ReadTimeoutError`` carries ``response = None`` (from requests), which made it raise
    ``AttributeError`` instead of the ``StoreUnavailable`` a timeout is.
    """
    cause = error.cause if isinstance(error, PynamoDBException) else error
    response = getattr(cause, "response", None)
    if not isinstance(response, dict):
        return None
    value = response.get("Error", {}).get(name)
    return str(value) if value else None


def _error_code(error: BaseException) -> str | None:
    return _error_field(error, "Code")


def _is_conditional_failure(error: PynamoDBException) -> bool:
    return _error_code(error) == "ConditionalCheckFailedException"


def _unavailable(action: str, error: BaseException) -> StoreUnavailable:
    """Describe a DynamoDB failure in one line, without the request payload or a traceback."""
    code = _error_code(error)
    cause = error.cause if isinstance(error, PynamoDBException) else error
    if code in _THROTTLING_CODES:
        return StoreUnavailable(f"DynamoDB throttled {action} after retries; try again later")
    if code == "ResourceNotFoundException":
        return StoreUnavailable(
            f"DynamoDB {action} failed: a table does not exist; run `tracking init` first"
        )
    if code:
        message = _error_field(error, "Message") or ""
        return StoreUnavailable(f"DynamoDB {action} failed: {code}: {message}".rstrip(": "))
    if isinstance(cause, BotoCoreError):
        # Connection errors and timeouts: botocore's message names the endpoint, which helps.
        return StoreUnavailable(f"DynamoDB {action} failed: {cause}")
    return StoreUnavailable(f"DynamoDB {action} failed: {type(cause).__name__}")


@contextmanager
def _calling(action: str) -> Iterator[None]:
    """Turn any pynamodb/botocore failure inside the block into ``StoreUnavailable``."""
    try:
        yield
    except TrackingError:
        raise
    except (PynamoDBException, BotoCoreError, ClientError) as error:
        raise _unavailable(action, error) from error


# -- pynamodb classes, one set per store --------------------------------------------------------


class _Models:
    """The pynamodb classes bound to one store's tables and connection settings."""

    def __init__(
        self,
        prefix: str,
        *,
        region: str,
        host: str | None,
        connect_timeout_seconds: float,
        read_timeout_seconds: float,
        max_retry_attempts: int,
    ) -> None:
        class _Settings:
            # Model.Meta is read by pynamodb when it builds the class's connection.
            region = ""
            host: str | None = None
            connect_timeout_seconds = 0.0
            read_timeout_seconds = 0.0
            max_retry_attempts = 0

        _Settings.region = region
        _Settings.host = host
        _Settings.connect_timeout_seconds = connect_timeout_seconds
        _Settings.read_timeout_seconds = read_timeout_seconds
        _Settings.max_retry_attempts = max_retry_attempts

        class Gsi1(GlobalSecondaryIndex[Any]):  # type: ignore[no-untyped-call]
            class Meta:
                index_name = schema.GSI1_NAME
                projection = AllProjection()

            gsi1pk = UnicodeAttribute(hash_key=True)
            gsi1sk = UnicodeAttribute(range_key=True)

        class TrackingItem(Model):
            """Any item of the tracking table; which attributes are set depends on ``sk``."""

            class Meta(_Settings):
                table_name = schema.tracking_table_name(prefix)

            pk = UnicodeAttribute(hash_key=True)
            sk = UnicodeAttribute(range_key=True)
            gsi1pk = UnicodeAttribute(null=True)
            gsi1sk = UnicodeAttribute(null=True)
            gsi1 = Gsi1()
            # experiment
            experiment_id = UnicodeAttribute(null=True)
            name = UnicodeAttribute(null=True)
            created_at = NumberAttribute(null=True)
            tags = MapAttribute[str, str](null=True)  # type: ignore[no-untyped-call]
            # run
            run_id = UnicodeAttribute(null=True)
            experiment_name = UnicodeAttribute(null=True)
            run_name = UnicodeAttribute(null=True)
            status = UnicodeAttribute(null=True)
            start_time = NumberAttribute(null=True)
            end_time = NumberAttribute(null=True)
            parent_run_id = UnicodeAttribute(null=True)
            # param / tag value; latest metric value as repr(float) (see MetricPoint.value)
            value = UnicodeAttribute(null=True)
            step = NumberAttribute(null=True)
            timestamp = NumberAttribute(null=True)
            # dataset / artifact record
            uri = UnicodeAttribute(null=True)
            digest = UnicodeAttribute(null=True)
            digest_algorithm = UnicodeAttribute(null=True)
            size = NumberAttribute(null=True)
            version_id = UnicodeAttribute(null=True)
            logged_at = NumberAttribute(null=True)
            sha256 = UnicodeAttribute(null=True)
            # registered model (also name, created_at, tags)
            latest_version = NumberAttribute(null=True)
            updated_at = NumberAttribute(null=True)
            description = UnicodeAttribute(null=True)
            # model version (also run_id, experiment_name, sha256, size, description, tags)
            version = NumberAttribute(null=True)
            artifact_name = UnicodeAttribute(null=True)
            artifact_uri = UnicodeAttribute(null=True)
            flavor = UnicodeAttribute(null=True)
            # JSON text: free-form, so neither pynamodb nor DynamoDB need to know its shape
            signature_json = UnicodeAttribute(null=True, attr_name="signature")
            metadata_json = UnicodeAttribute(null=True, attr_name="metadata")
            stage = UnicodeAttribute(null=True)
            actor = UnicodeAttribute(null=True)
            # alias (also version); previous targets, newest last, bounded by the registry
            alias = UnicodeAttribute(null=True)
            # pynamodb types ``of`` as the element's Python type, yet requires an Attribute class.
            previous = ListAttribute[float](of=NumberAttribute, null=True)  # type: ignore[arg-type]
            revision = UnicodeAttribute(null=True)
            # history entry (also name, alias, actor, timestamp)
            action = UnicodeAttribute(null=True)
            from_version = NumberAttribute(null=True)
            to_version = NumberAttribute(null=True)
            reason = UnicodeAttribute(null=True)
            change_id = UnicodeAttribute(null=True)
            # idempotency record (also status: in_progress / completed); expires_at is the
            # table's TTL attribute, in seconds since the epoch
            fingerprint = UnicodeAttribute(null=True)
            response_status = NumberAttribute(null=True)
            response_body = UnicodeAttribute(null=True)
            expires_at = NumberAttribute(null=True)

        class MetricPoint(Model):
            """One point of a metric's history."""

            class Meta(_Settings):
                table_name = schema.metrics_table_name(prefix)

            pk = UnicodeAttribute(hash_key=True)
            step = NumberAttribute(range_key=True)
            # A string holding repr(float): exact round trip, and DynamoDB numbers cannot hold
            # the whole float range (their exponent stops at 1e125 / 1e-130).
            value = UnicodeAttribute()
            timestamp = NumberAttribute()

        self.TrackingItem = TrackingItem
        self.MetricPoint = MetricPoint


# -- item -> entity ---------------------------------------------------------------------------


def _experiment_from(item: Any) -> Experiment:
    tags = item.tags.as_dict() if item.tags is not None else {}
    return Experiment(
        experiment_id=item.experiment_id,
        name=item.name,
        created_at=int(item.created_at),
        tags=dict(tags),
    )


def _run_from(items: Iterable[Any]) -> Run | None:
    """Assemble a run from the items of its partition; ``None`` when the run item is missing."""
    head: Any = None
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    metrics: dict[str, Metric] = {}
    datasets: dict[str, Dataset] = {}
    artifacts: dict[str, Artifact] = {}
    for item in items:
        sk: str = item.sk
        if sk == _RUN_SK:
            head = item
        elif sk.startswith(_PARAM):
            params[sk[len(_PARAM) :]] = item.value
        elif sk.startswith(_TAG):
            tags[sk[len(_TAG) :]] = item.value
        elif sk.startswith(_METRIC):
            key = sk[len(_METRIC) :]
            metrics[key] = Metric(
                key=key,
                value=float(item.value),
                step=int(item.step),
                timestamp=int(item.timestamp),
            )
        elif sk.startswith(_DATASET):
            name = sk[len(_DATASET) :]
            datasets[name] = Dataset(
                name=name,
                uri=item.uri,
                digest=item.digest,
                digest_algorithm=item.digest_algorithm,
                size=None if item.size is None else int(item.size),
                version_id=item.version_id,
                logged_at=int(item.logged_at),
            )
        elif sk.startswith(_ARTIFACT):
            name = sk[len(_ARTIFACT) :]
            artifacts[name] = Artifact(
                name=name,
                uri=item.uri,
                sha256=item.sha256,
                size=int(item.size),
                created_at=int(item.created_at),
            )
    if head is None:
        return None
    return Run(
        run_id=head.run_id,
        experiment_id=head.experiment_id,
        experiment_name=head.experiment_name,
        run_name=head.run_name,
        status=RunStatus(head.status),
        start_time=int(head.start_time),
        end_time=None if head.end_time is None else int(head.end_time),
        parent_run_id=head.parent_run_id,
        params=params,
        metrics=metrics,
        tags=tags,
        datasets=datasets,
        artifacts=artifacts,
    )


def _latest_points(metrics: Sequence[Metric]) -> dict[str, Metric]:
    """Per key, the point with the highest (step, timestamp); a later point wins a full tie."""
    latest: dict[str, Metric] = {}
    for metric in metrics:
        current = latest.get(metric.key)
        if current is None or (metric.step, metric.timestamp) >= (current.step, current.timestamp):
            latest[metric.key] = metric
    return latest


def _history_points(metrics: Sequence[Metric]) -> list[Metric]:
    """One point per (key, step), the last one given: a batch may not repeat a key."""
    points: dict[tuple[str, int], Metric] = {}
    for metric in metrics:
        points[(metric.key, metric.step)] = metric
    return list(points.values())


class DynamoDBMetadataStore(TrackingStore):
    """``TrackingStore`` on two DynamoDB tables named ``{table_prefix}-tracking`` and ``-metrics``.

    Region: ``region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the AWS profile, else
    ``us-east-1``. Endpoint: ``host``, else botocore's own resolution, which honours
    ``AWS_ENDPOINT_URL_DYNAMODB`` and ``AWS_ENDPOINT_URL`` (moto server, DynamoDB Local).
    Timeouts and botocore retries are bounded so that a failing call gives up well within API
    Gateway's 29 s: at most 3 attempts of (2 s connect + 5 s read) plus standard-mode backoff,
    24 s in the worst case (tests/hardening/test_time_budget.py computes it).
    """

    def __init__(
        self,
        table_prefix: str,
        *,
        region: str | None = None,
        host: str | None = None,
        connect_timeout_seconds: float = 2,
        read_timeout_seconds: float = 5,
        max_retry_attempts: int = 2,
    ) -> None:
        """Bind the store to its tables; no request is sent and no client is created yet.

        ``max_retry_attempts`` counts retries after the first attempt (pynamodb's meaning), so
        the default 2 is at most 3 attempts in all.

        Raises:
            InvalidInput: ``table_prefix`` cannot form DynamoDB table names.
        """
        if (
            not isinstance(table_prefix, str)
            or not 1 <= len(table_prefix) <= 200
            or not all(
                char.isascii() and (char.isalnum() or char in "_.-") for char in table_prefix
            )
        ):
            raise InvalidInput(
                f"invalid DynamoDB table prefix {table_prefix!r}: use 1-200 characters "
                "from A-Z a-z 0-9 _ . -"
            )
        self.table_prefix = table_prefix
        self.region = _resolve_region(region)
        self.host = host or None
        self._models = _Models(
            table_prefix,
            region=self.region,
            host=self.host,
            connect_timeout_seconds=connect_timeout_seconds,
            read_timeout_seconds=read_timeout_seconds,
            max_retry_attempts=max_retry_attempts,
        )
        # Indirection so tests can observe the backoff without sleeping.
        self._sleep: Callable[[float], None] = time.sleep
        self._history_last_ns = 0

    # -- plumbing ------------------------------------------------------------------------------

    def _connection(self) -> Connection:
        # The tracking class's own connection: transactions and table creation share its client.
        connection: Connection = self._models.TrackingItem._get_connection().connection
        return connection

    def _transact(self, action: str, fill: Callable[[TransactWrite], None]) -> list[str | None]:
        """Run one TransactWriteItems built by ``fill``.

        Returns:
            ``[]`` when it committed, else the cancellation reason code of each item in request
            order (condition checks first, then puts), when every reason is a failed condition.

        Raises:
            Conflict: another transaction touched the same items at the same time.
            StoreUnavailable: any other failure.
        """
        try:
            with TransactWrite(connection=self._connection()) as transaction:
                fill(transaction)
        except TransactWriteError as error:
            codes = [reason.code if reason else None for reason in error.cancellation_reasons]
            if _error_code(error) == "TransactionCanceledException" and codes:
                if "TransactionConflict" in codes:
                    raise Conflict(
                        f"{action} lost a race with a concurrent change to the same items; retry"
                    ) from error
                if all(code in (None, "ConditionalCheckFailed") for code in codes):
                    return codes
            raise _unavailable(action, error) from error
        except (PynamoDBException, BotoCoreError, ClientError) as error:
            raise _unavailable(action, error) from error
        return []

    def _run_exists(self, run_id: str) -> bool:
        model = self._models.TrackingItem
        with _calling("get run"):
            try:
                model.get(_run_pk(run_id), _RUN_SK, consistent_read=True, attributes_to_get=["pk"])
            except DoesNotExist:
                return False
        return True

    def _require_run(self, run_id: str) -> None:
        if not self._run_exists(run_id):
            raise NotFound(f"run {run_id!r} not found")

    def _query_partition(self, run_id: str) -> list[Any]:
        # No limit: pynamodb follows LastEvaluatedKey, so a run larger than 1 MB still loads.
        with _calling("get run"):
            return list(self._models.TrackingItem.query(_run_pk(run_id), consistent_read=True))

    # -- lifecycle -----------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the tables declared in ``dynamodb_schema`` when missing and wait until ACTIVE.

        Idempotent: existing tables are only checked.

        Raises:
            StoreUnavailable: DynamoDB failed, a table did not become ACTIVE in time, or an
                existing table has another key schema than the declaration.
        """
        with _calling("initialize"):
            client: Any = self._connection().client
            for definition in schema.table_definitions(self.table_prefix):
                self._ensure_table(client, definition)

    def _ensure_table(self, client: Any, definition: dict[str, Any]) -> None:
        name = definition["TableName"]
        try:
            description = client.describe_table(TableName=name)["Table"]
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
            try:
                client.create_table(**definition)
            except ClientError as create_error:
                # Another `tracking init` may be creating it right now; then just wait.
                if _error_code(create_error) != "ResourceInUseException":
                    raise
            description = self._wait_active(client, name)
        else:
            if description.get("TableStatus") != "ACTIVE":
                description = self._wait_active(client, name)
        if description.get("KeySchema") != definition["KeySchema"]:
            raise StoreUnavailable(
                f"DynamoDB table {name} exists with key schema {description.get('KeySchema')}; "
                f"this version expects {definition['KeySchema']}"
            )

    def _wait_active(self, client: Any, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + TABLE_ACTIVE_TIMEOUT_SECONDS
        while True:
            description: dict[str, Any] = client.describe_table(TableName=name)["Table"]
            indexes = description.get("GlobalSecondaryIndexes", [])
            if description.get("TableStatus") == "ACTIVE" and all(
                index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
            ):
                return description
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    f"DynamoDB table {name} is not ACTIVE "
                    f"after {TABLE_ACTIVE_TIMEOUT_SECONDS:.0f} s"
                )
            self._sleep(1.0)

    def close(self) -> None:
        """Close the HTTP connection pools of the clients this store created."""
        for model in (self._models.TrackingItem, self._models.MetricPoint):
            table_connection = model._connection
            # Only close what exists: reading `.client` would create a client just to close it.
            client = (
                getattr(table_connection.connection, "_client", None) if table_connection else None
            )
            if client is not None:
                client.close()

    # -- experiments ---------------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> Experiment:
        """Create an experiment; its name is claimed with a conditional put.

        Raises:
            AlreadyExists: an experiment with this name exists.
        """
        model = self._models.TrackingItem
        experiment = Experiment(
            experiment_id=uuid.uuid4().hex,
            name=name,
            created_at=_now_ms(),
            tags=dict(tags or {}),
        )
        item = model(
            _experiment_pk(name),
            _EXPERIMENT_SK,
            gsi1pk=_EXPERIMENTS_GSI_PK,
            gsi1sk=name,
            experiment_id=experiment.experiment_id,
            name=name,
            created_at=experiment.created_at,
            tags=experiment.tags,
        )
        _check_item_size(item.serialize(), f"experiment {name!r}")
        try:
            item.save(condition=model.pk.does_not_exist())
        except PutError as error:
            if _is_conditional_failure(error):
                raise AlreadyExists(f"experiment {name!r} already exists") from error
            raise _unavailable("create experiment", error) from error
        except (PynamoDBException, BotoCoreError, ClientError) as error:
            raise _unavailable("create experiment", error) from error
        return experiment

    def get_experiment(self, name: str) -> Experiment:
        """Return the experiment called ``name``.

        Raises:
            NotFound: no such experiment.
        """
        with _calling("get experiment"):
            try:
                item = self._models.TrackingItem.get(
                    _experiment_pk(name), _EXPERIMENT_SK, consistent_read=True
                )
            except DoesNotExist:
                raise NotFound(f"experiment {name!r} not found") from None
        return _experiment_from(item)

    def _named_page(
        self,
        action: str,
        gsi_pk: str,
        pk_of: Callable[[str], str],
        sk: str,
        token_field: str,
        limit: int,
        page_token: str | None,
    ) -> list[Any]:
        """Up to ``limit + 1`` items listed under ``gsi_pk`` in ``gsi1``, ordered by name.

        One more than asked tells whether another page exists without an empty last page. The
        token holds the last name only; the start key is rebuilt from it.

        Raises:
            InvalidInput: ``page_token`` was not made by this listing.
        """
        start_key: dict[str, dict[str, Any]] | None = None
        if page_token is not None:
            name = decode_token(page_token, (token_field,))[token_field]
            if not isinstance(name, str) or not name:
                raise InvalidInput("invalid page token")
            start_key = {
                "gsi1pk": {"S": gsi_pk},
                "gsi1sk": {"S": name},
                "pk": {"S": pk_of(name)},
                "sk": {"S": sk},
            }
        with _calling(action):
            return list(
                self._models.TrackingItem.query(
                    gsi_pk,
                    index_name=schema.GSI1_NAME,
                    limit=limit + 1,
                    last_evaluated_key=start_key,
                )
            )

    def list_experiments(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[Experiment]:
        """Return experiments ordered by name, from one Query on ``gsi1``.

        Raises:
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        items = self._named_page(
            "list experiments", _EXPERIMENTS_GSI_PK, _experiment_pk, _EXPERIMENT_SK,
            "experiment", limit, page_token,
        )  # fmt: skip
        experiments = [_experiment_from(item) for item in items[:limit]]
        token = None
        if len(items) > limit:
            token = encode_token({"experiment": experiments[-1].name})
        return Page(items=experiments, next_token=token)

    # -- runs ----------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        experiment: Experiment,
        run_id: str,
        run_name: str | None,
        tags: Mapping[str, str],
        parent_run_id: str | None,
        start_time: int,
    ) -> Run:
        """Create a ``RUNNING`` run and its tags in one transaction.

        Raises:
            AlreadyExists: ``run_id`` is taken.
            NotFound: the experiment or ``parent_run_id`` does not exist.
        """
        model = self._models.TrackingItem
        run = Run(
            run_id=run_id,
            experiment_id=experiment.experiment_id,
            experiment_name=experiment.name,
            run_name=run_name,
            status=RunStatus.RUNNING,
            start_time=start_time,
            parent_run_id=parent_run_id,
            tags=dict(tags),
        )
        head = model(
            _run_pk(run_id),
            _RUN_SK,
            gsi1pk=_runs_gsi_pk(experiment.experiment_id),
            gsi1sk=_runs_gsi_sk(start_time, run_id),
            run_id=run_id,
            experiment_id=experiment.experiment_id,
            experiment_name=experiment.name,
            run_name=run_name,
            status=RunStatus.RUNNING.value,
            start_time=start_time,
            parent_run_id=parent_run_id,
            # This call's token: tells our own committed attempt from another writer's run.
            change_id=uuid.uuid4().hex,
        )
        checks = 2 if parent_run_id is not None else 1
        tag_items = list(tags.items())
        first_tags = tag_items[: TRANSACTION_LIMIT - checks - 1]

        def fill(transaction: TransactWrite) -> None:
            transaction.condition_check(
                model, _experiment_pk(experiment.name), _EXPERIMENT_SK, condition=model.pk.exists()
            )
            if parent_run_id is not None:
                transaction.condition_check(
                    model, _run_pk(parent_run_id), _RUN_SK, condition=model.pk.exists()
                )
            transaction.save(head, condition=model.pk.does_not_exist())
            for key, value in first_tags:
                transaction.save(model(_run_pk(run_id), _TAG + key, value=value))

        codes = self._transact("create run", fill)
        if codes:
            if codes[0] is not None:
                raise NotFound(f"experiment {experiment.name!r} not found")
            if parent_run_id is not None and codes[1] is not None:
                raise NotFound(f"parent run {parent_run_id!r} not found")
            if not self._committed_earlier(run_id, head.change_id):
                raise AlreadyExists(f"run {run_id!r} already exists")
        if len(tag_items) > len(first_tags):
            # Rare: more tags than one transaction holds. The run exists now, so write the rest
            # like later tags, without the per-request limit of ``log_batch`` (tags given to
            # ``create_run`` are not a log_batch request).
            self._write_params_and_tags(run_id, {}, dict(tag_items[len(first_tags) :]))
        return run

    def _committed_earlier(self, run_id: str, token: str) -> bool:
        """Whether the run item holds this call's token: botocore re-sent a CreateRun whose
        first attempt committed but whose answer was lost (a read timeout)."""
        model = self._models.TrackingItem
        with _calling("create run"):
            try:
                item = model.get(_run_pk(run_id), _RUN_SK, consistent_read=True)
            except DoesNotExist:
                return False
        return bool(item.change_id == token)

    def _same_artifact(self, run_id: str, artifact: Artifact) -> bool:
        model = self._models.TrackingItem
        with _calling("log artifact"):
            try:
                item = model.get(_run_pk(run_id), _ARTIFACT + artifact.name, consistent_read=True)
            except DoesNotExist:
                return False
        stored = (item.uri, item.sha256, item.size, item.created_at)
        return stored == (artifact.uri, artifact.sha256, artifact.size, artifact.created_at)

    def set_run_status(self, run_id: str, status: RunStatus, end_time: int | None) -> None:
        """Set a run's status and end time with a conditional update.

        Raises:
            NotFound: no such run.
        """
        model = self._models.TrackingItem
        item = model(_run_pk(run_id), _RUN_SK)
        end_action = model.end_time.remove() if end_time is None else model.end_time.set(end_time)
        try:
            item.update(
                actions=[model.status.set(RunStatus(status).value), end_action],
                condition=model.pk.exists(),
            )
        except UpdateError as error:
            if _is_conditional_failure(error):
                raise NotFound(f"run {run_id!r} not found") from error
            raise _unavailable("set run status", error) from error
        except (PynamoDBException, BotoCoreError, ClientError) as error:
            raise _unavailable("set run status", error) from error

    def get_run(self, run_id: str) -> Run:
        """Return the run, from one (paginated) Query of its partition.

        Raises:
            NotFound: no such run.
        """
        run = _run_from(self._query_partition(run_id))
        if run is None:
            raise NotFound(f"run {run_id!r} not found")
        return run

    def list_runs(
        self,
        experiment_name: str,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[Run]:
        """Return complete runs, newest start first: one Query on ``gsi1``, then one per run.

        Raises:
            NotFound: no such experiment.
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        start: tuple[str, str] | None = None
        if page_token is not None:
            state = decode_token(page_token, ("order", "run"))
            order, run_id = state["order"], state["run"]
            if (
                not isinstance(order, str)
                or not isinstance(run_id, str)
                or not order.endswith(f"#{run_id}")
            ):
                raise InvalidInput("invalid page token")
            start = (order, run_id)
        experiment = self.get_experiment(experiment_name)
        gsi_pk = _runs_gsi_pk(experiment.experiment_id)
        start_key = None
        if start is not None:
            start_key = {
                "gsi1pk": {"S": gsi_pk},
                "gsi1sk": {"S": start[0]},
                "pk": {"S": _run_pk(start[1])},
                "sk": {"S": _RUN_SK},
            }
        model = self._models.TrackingItem
        with _calling("list runs"):
            heads = list(
                model.query(
                    gsi_pk,
                    index_name=schema.GSI1_NAME,
                    limit=limit + 1,
                    last_evaluated_key=start_key,
                )
            )
        run_ids = [head.run_id for head in heads[:limit]]
        if len(run_ids) > 1:
            # One Query per run is latency-bound: a page of 100 runs takes ~1 s one after the
            # other and a tenth of that a few at a time. The botocore client is thread-safe.
            with ThreadPoolExecutor(max_workers=LIST_RUNS_CONCURRENCY) as pool:
                partitions = list(pool.map(self._query_partition, run_ids))
        else:
            partitions = [self._query_partition(run_id) for run_id in run_ids]
        # A run missing from its own partition cannot happen without deletes; skip, don't fail.
        runs = [run for run in map(_run_from, partitions) if run is not None]
        token = None
        if len(heads) > limit:
            last = heads[limit - 1]
            token = encode_token({"order": last.gsi1sk, "run": last.run_id})
        return Page(items=runs, next_token=token)

    # -- params, tags, metrics -----------------------------------------------------------------

    def _log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric],
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> None:
        """Write params and tags transactionally, then metric points in batches of 25.

        Params and tags go first, in a transaction that also checks the run exists and that no
        param would change, so a ``NotFound`` or ``Conflict`` means nothing was written. Metric
        points then go through BatchWriteItem (``UnprocessedItems`` re-sent with exponential
        backoff), and each key's latest-metric item is replaced only by a newer point.

        The per-request limits were checked by ``MetadataStore.log_batch``: up to 100 params
        and 100 tags take at most three transactions of 99 writes.

        Raises:
            NotFound: no such run (nothing written).
            Conflict: a param already has a different value (nothing written).
            StoreUnavailable: DynamoDB failed; retrying the same batch is safe.
        """
        params = dict(params)
        tags = dict(tags)
        if params or tags:
            self._write_params_and_tags(run_id, params, tags)
        else:
            self._require_run(run_id)
        if metrics:
            self._write_metric_history(_history_points(metrics), run_id)
            self._write_latest_metrics(run_id, _latest_points(metrics))

    def _write_params_and_tags(
        self, run_id: str, params: dict[str, str], tags: dict[str, str]
    ) -> None:
        model = self._models.TrackingItem
        writes = [(_PARAM + key, value) for key, value in params.items()]
        writes += [(_TAG + key, value) for key, value in tags.items()]
        chunks = list(_chunks(writes, TRANSACTION_LIMIT - 1))
        if len(chunks) > 1:
            # Several transactions cannot be atomic together: find conflicts before the first.
            # Only these params are read, not the run's partition: a run with 10,000 params
            # logged 100 at a time would otherwise read all of them on every call.
            self._require_run(run_id)
            existing = self._stored_params(run_id, list(params))
            self._raise_param_conflicts(
                run_id, [key for key, value in params.items() if existing.get(key, value) != value]
            )
        for chunk in chunks:

            def fill(transaction: TransactWrite, chunk: Sequence[tuple[str, str]] = chunk) -> None:
                transaction.condition_check(
                    model, _run_pk(run_id), _RUN_SK, condition=model.pk.exists()
                )
                for sk, value in chunk:
                    condition = None
                    if sk.startswith(_PARAM):
                        # Write-once: same value again is a harmless overwrite, another refuses.
                        condition = model.pk.does_not_exist() | (model.value == value)
                    transaction.save(model(_run_pk(run_id), sk, value=value), condition=condition)

            codes = self._transact("log batch", fill)
            if not codes:
                continue
            if codes[0] is not None:
                raise NotFound(f"run {run_id!r} not found")
            self._raise_param_conflicts(
                run_id,
                [
                    sk[len(_PARAM) :]
                    for (sk, _), code in zip(chunk, codes[1:], strict=True)
                    if code is not None
                ],
            )

    def _stored_params(self, run_id: str, keys: Sequence[str]) -> dict[str, str]:
        """The stored values of these params of a run (missing ones are left out).

        One strongly consistent BatchGetItem per 100 keys; ``UnprocessedKeys`` are re-sent with
        the same backoff as unprocessed writes (pynamodb's ``batch_get`` re-sends at once).

        Raises:
            StoreUnavailable: DynamoDB failed, or kept keys unprocessed.
        """
        connection = self._models.TrackingItem._get_connection()
        table_name = schema.tracking_table_name(self.table_prefix)
        found: dict[str, str] = {}
        for chunk in _chunks(list(keys), BATCH_GET_LIMIT):
            pending: list[Any] = [
                {"pk": {"S": _run_pk(run_id)}, "sk": {"S": _PARAM + key}} for key in chunk
            ]
            for attempt in range(UNPROCESSED_RETRY_ATTEMPTS + 1):
                if attempt:
                    self._backoff(attempt)
                with _calling("log batch"):
                    response = connection.batch_get_item(
                        pending, consistent_read=True, attributes_to_get=["sk", "value"]
                    )
                for raw in (response or {}).get("Responses", {}).get(table_name, []):
                    found[raw["sk"]["S"][len(_PARAM) :]] = raw["value"]["S"]
                pending = (
                    (response or {}).get("UnprocessedKeys", {}).get(table_name, {}).get("Keys", [])
                )
                if not pending:
                    break
            else:
                raise StoreUnavailable(
                    f"DynamoDB left {len(pending)} param reads unprocessed after "
                    f"{UNPROCESSED_RETRY_ATTEMPTS} retries (throttled); the batch may be retried"
                )
        return found

    def _backoff(self, attempt: int) -> None:
        """Sleep before re-sending unprocessed items: exponential, with equal jitter."""
        delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        # Equal jitter: grows exponentially yet spreads concurrent writers apart.
        self._sleep(delay / 2 + random.uniform(0, delay / 2))

    @staticmethod
    def _raise_param_conflicts(run_id: str, keys: Sequence[str]) -> None:
        if keys:
            names = ", ".join(repr(key) for key in sorted(keys))
            raise Conflict(
                f"run {run_id!r} already has a different value for param {names}; "
                "params are write-once"
            )

    def _write_metric_history(self, points: Sequence[Metric], run_id: str) -> None:
        model = self._models.MetricPoint
        items = [
            model(
                _metric_pk(run_id, point.key),
                point.step,
                value=repr(float(point.value)),
                timestamp=point.timestamp,
            ).serialize()
            for point in points
        ]
        for chunk in _chunks(items, BATCH_WRITE_LIMIT):
            self._batch_write(list(chunk))

    def _batch_write(self, items: list[dict[str, Any]]) -> None:
        """One BatchWriteItem of at most 25 puts, re-sending ``UnprocessedItems`` until done.

        pynamodb's own ``BatchWrite`` re-sends without any pause and stops after
        ``max_retry_attempts``; DynamoDB asks for exponential backoff, so the loop is ours.
        """
        connection = self._models.MetricPoint._get_connection()
        table_name = schema.metrics_table_name(self.table_prefix)
        pending = items
        for attempt in range(UNPROCESSED_RETRY_ATTEMPTS + 1):
            if attempt:
                self._backoff(attempt)
            with _calling("log metrics"):
                response = connection.batch_write_item(put_items=pending)
            unprocessed = (response or {}).get("UnprocessedItems", {}).get(table_name, [])
            if not unprocessed:
                return
            pending = [request["PutRequest"]["Item"] for request in unprocessed]
        raise StoreUnavailable(
            f"DynamoDB left {len(pending)} metric points unprocessed after "
            f"{UNPROCESSED_RETRY_ATTEMPTS} retries (throttled); the batch may be retried"
        )

    def _write_latest_metrics(self, run_id: str, latest: Mapping[str, Metric]) -> None:
        model = self._models.TrackingItem
        for key, metric in latest.items():
            item = model(
                _run_pk(run_id),
                _METRIC + key,
                value=repr(float(metric.value)),
                step=metric.step,
                timestamp=metric.timestamp,
            )
            newer = (
                model.pk.does_not_exist()
                | (model.step < metric.step)
                | ((model.step == metric.step) & (model.timestamp <= metric.timestamp))
            )
            try:
                item.save(condition=newer)
            except PutError as error:
                if _is_conditional_failure(error):
                    continue  # the stored latest point is newer: keeping it is the point
                raise _unavailable("log metrics", error) from error
            except (PynamoDBException, BotoCoreError, ClientError) as error:
                raise _unavailable("log metrics", error) from error

    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[Metric]:
        """Return one metric's points in step order, from one Query of the metrics table.

        Raises:
            NotFound: no such run.
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        start_key: dict[str, dict[str, Any]] | None = None
        pk = _metric_pk(run_id, key)
        if page_token is not None:
            step = decode_token(page_token, ("step",))["step"]
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise InvalidInput("invalid page token")
            start_key = {"pk": {"S": pk}, "step": {"N": str(step)}}
        self._require_run(run_id)
        model = self._models.MetricPoint
        with _calling("get metric history"):
            items = list(
                model.query(pk, consistent_read=True, limit=limit + 1, last_evaluated_key=start_key)
            )
        points = [
            Metric(
                key=key, value=float(item.value), step=int(item.step), timestamp=int(item.timestamp)
            )
            for item in items[:limit]
        ]
        token = encode_token({"step": points[-1].step}) if len(items) > limit else None
        return Page(items=points, next_token=token)

    # -- datasets and artifacts ----------------------------------------------------------------

    def log_dataset(self, run_id: str, dataset: Dataset) -> None:
        """Record a dataset version; the same name again replaces the record.

        Raises:
            NotFound: no such run.
        """
        model = self._models.TrackingItem
        item = model(
            _run_pk(run_id),
            _DATASET + dataset.name,
            uri=dataset.uri,
            digest=dataset.digest,
            digest_algorithm=dataset.digest_algorithm,
            size=dataset.size,
            version_id=dataset.version_id,
            logged_at=dataset.logged_at,
        )

        def fill(transaction: TransactWrite) -> None:
            transaction.condition_check(
                model, _run_pk(run_id), _RUN_SK, condition=model.pk.exists()
            )
            transaction.save(item)

        if self._transact("log dataset", fill):
            raise NotFound(f"run {run_id!r} not found")

    def log_artifact(self, run_id: str, artifact: Artifact) -> None:
        """Record an uploaded artifact; an existing record of the same name is never replaced.

        Raises:
            NotFound: no such run.
            AlreadyExists: the run already has an artifact with this name.
        """
        model = self._models.TrackingItem
        item = model(
            _run_pk(run_id),
            _ARTIFACT + artifact.name,
            uri=artifact.uri,
            sha256=artifact.sha256,
            size=artifact.size,
            created_at=artifact.created_at,
        )

        def fill(transaction: TransactWrite) -> None:
            transaction.condition_check(
                model, _run_pk(run_id), _RUN_SK, condition=model.pk.exists()
            )
            transaction.save(item, condition=model.pk.does_not_exist())

        codes = self._transact("log artifact", fill)
        if codes:
            if codes[0] is not None:
                raise NotFound(f"run {run_id!r} not found")
            if self._same_artifact(run_id, artifact):
                # This record, written by an earlier attempt whose answer was lost (a read
                # timeout); refusing it would make the caller delete the uploaded object.
                return
            raise AlreadyExists(f"run {run_id!r} already has an artifact named {artifact.name!r}")

    # -- model registry ------------------------------------------------------------------------

    def _next_history_clock(self) -> int:
        """Nanoseconds since the epoch, strictly increasing within this store.

        History is listed by sort key; two entries written by one process in the same
        millisecond must still come back in the order they were written. Callers hold the
        registry lock.
        """
        self._history_last_ns = max(time.time_ns(), self._history_last_ns + 1)
        return self._history_last_ns

    def _history_item(self, change: AliasChange) -> Any:
        model = self._models.TrackingItem
        return model(
            _model_pk(change.name),
            _history_sk(change.timestamp, self._next_history_clock(), change.change_id),
            name=change.name,
            action=HistoryAction(change.action).value,
            alias=change.alias,
            from_version=change.from_version,
            to_version=change.to_version,
            actor=change.actor,
            timestamp=change.timestamp,
            reason=change.reason,
            change_id=change.change_id,
        )

    def _model_exists(self, name: str) -> bool:
        model = self._models.TrackingItem
        with _calling("get model"):
            try:
                model.get(
                    _model_pk(name), _MODEL_SK, consistent_read=True, attributes_to_get=["pk"]
                )
            except DoesNotExist:
                return False
        return True

    def _require_model(self, name: str) -> None:
        if not self._model_exists(name):
            raise NotFound(f"model {name!r} not found")

    def _missing_version(self, name: str, version: int) -> NotFound:
        self._require_model(name)
        return NotFound(f"model {name!r} has no version {version}")

    def _aliases_of(self, name: str) -> dict[str, int]:
        model = self._models.TrackingItem
        with _calling("get model"):
            items = model.query(_model_pk(name), model.sk.startswith(_ALIAS), consistent_read=True)
            return {item.alias: int(item.version) for item in items}

    def create_model_version(
        self, version: ModelVersion, *, expected_latest: int, change: AliasChange
    ) -> None:
        """Write the model's new latest number, the version and its history entry in one
        TransactWriteItems.

        The model item is created (if absent) when ``expected_latest`` is 0, else updated only
        if its ``latest_version`` is still ``expected_latest``.

        Raises:
            Conflict: another registration took this number first (nothing written).
        """
        check_tags(version.tags, f"model {version.name!r} version {version.version}")
        if version.version != expected_latest + 1:
            raise Conflict(
                f"model {version.name!r} version {version.version} was taken concurrently"
            )
        model = self._models.TrackingItem
        pk = _model_pk(version.name)
        writes = _Writes()
        if expected_latest == 0:
            head = model(
                pk,
                _MODEL_SK,
                gsi1pk=_MODELS_GSI_PK,
                gsi1sk=version.name,
                name=version.name,
                created_at=version.created_at,
                updated_at=version.created_at,
                latest_version=version.version,
                tags={},
            )
            writes.put("latest", head, model.pk.does_not_exist())
        else:
            writes.update(
                "latest",
                model(pk, _MODEL_SK),
                [
                    model.latest_version.set(version.version),
                    model.updated_at.set(version.created_at),
                ],
                model.latest_version == expected_latest,
            )
        version_item = _version_item(model, version)
        _check_item_size(version_item.serialize(), f"model {version.name!r} version")
        writes.put("version", version_item, model.pk.does_not_exist())
        writes.put("history", self._history_item(change), model.pk.does_not_exist())
        failed = writes.failed(self._transact("register model version", writes.fill))
        if failed and "history" not in failed:
            # Whichever condition failed, a concurrent registration moved the model on. (A
            # failed history condition means this transaction committed on an earlier attempt
            # whose answer was lost: its item is keyed by this change's id.)
            raise Conflict(
                f"model {version.name!r} version {version.version} was taken concurrently"
            )

    def get_model(self, name: str) -> RegisteredModel:
        """Return the model item and its aliases: one GetItem and one Query.

        Raises:
            NotFound: no such model.
        """
        with _calling("get model"):
            try:
                item = self._models.TrackingItem.get(
                    _model_pk(name), _MODEL_SK, consistent_read=True
                )
            except DoesNotExist:
                raise NotFound(f"model {name!r} not found") from None
        return _model_from(item, self._aliases_of(name))

    def list_models(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        """Return models ordered by name: one Query on ``gsi1``, then one per model for aliases.

        Raises:
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        heads = self._named_page(
            "list models", _MODELS_GSI_PK, _model_pk, _MODEL_SK, "model", limit, page_token
        )
        page = heads[:limit]
        names = [head.name for head in page]
        if len(names) > 1:
            with ThreadPoolExecutor(max_workers=LIST_RUNS_CONCURRENCY) as pool:
                aliases = list(pool.map(self._aliases_of, names))
        else:
            aliases = [self._aliases_of(name) for name in names]
        models = [_model_from(head, found) for head, found in zip(page, aliases, strict=True)]
        token = encode_token({"model": names[-1]}) if len(heads) > limit else None
        return Page(items=models, next_token=token)

    def get_version(self, name: str, version: int) -> ModelVersion:
        """Return one version, from one GetItem.

        Raises:
            NotFound: no such model or version.
        """
        with _calling("get model version"):
            try:
                item = self._models.TrackingItem.get(
                    _model_pk(name), _version_sk(version), consistent_read=True
                )
            except DoesNotExist:
                item = None
        if item is None:
            raise self._missing_version(name, version)
        return _version_from(item)

    def list_versions(
        self, name: str, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[ModelVersion]:
        """Return versions newest first, from one backward Query of the model's partition.

        Raises:
            NotFound: no such model.
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        pk = _model_pk(name)
        start_key: dict[str, dict[str, Any]] | None = None
        if page_token is not None:
            before = decode_token(page_token, ("before",))["before"]
            if isinstance(before, bool) or not isinstance(before, int) or not 1 <= before < 10**10:
                raise InvalidInput("invalid page token")
            start_key = {"pk": {"S": pk}, "sk": {"S": _version_sk(before)}}
        model = self._models.TrackingItem
        with _calling("list model versions"):
            items = list(
                model.query(
                    pk,
                    model.sk.startswith(_VERSION),
                    consistent_read=True,
                    scan_index_forward=False,
                    limit=limit + 1,
                    last_evaluated_key=start_key,
                )
            )
        if not items:
            # A model always has a version, so only an empty answer needs the existence check.
            self._require_model(name)
        versions = [_version_from(item) for item in items[:limit]]
        token = encode_token({"before": versions[-1].version}) if len(items) > limit else None
        return Page(items=versions, next_token=token)

    def get_alias(self, name: str, alias: str) -> AliasState | None:
        """Return the alias's state from one strongly consistent GetItem.

        Raises:
            NotFound: no such model.
        """
        with _calling("get alias"):
            try:
                item = self._models.TrackingItem.get(
                    _model_pk(name), _ALIAS + alias, consistent_read=True
                )
            except DoesNotExist:
                item = None
        if item is None:
            # An alias item implies its model; only a missing alias needs the model checked.
            self._require_model(name)
            return None
        return AliasState(
            alias=item.alias,
            version=int(item.version),
            previous=[int(number) for number in item.previous or []],
            revision=item.revision,
        )

    def apply_change(
        self,
        name: str,
        *,
        alias_writes: Sequence[AliasWrite],
        stage_updates: Mapping[int, Stage],
        change: AliasChange,
    ) -> None:
        """Apply alias writes, stage updates, ``updated_at`` and the history entry in one
        TransactWriteItems, each alias guarded by its expected revision.

        Raises:
            NotFound: the model or a version in ``stage_updates`` does not exist.
            Conflict: an alias's revision is not the expected one, or another transaction
                touched the same items at the same time. Nothing is written.
        """
        model = self._models.TrackingItem
        pk = _model_pk(name)
        writes = _Writes()
        writes.update(
            "model",
            model(pk, _MODEL_SK),
            [model.updated_at.set(change.timestamp)],
            model.pk.exists(),
        )
        for write in alias_writes:
            label = f"{_ALIAS}{write.alias}"
            unchanged = (
                model.pk.does_not_exist()
                if write.expected_revision is None
                else model.revision == write.expected_revision
            )
            if write.check_only:
                writes.check(label, model, pk, _ALIAS + write.alias, unchanged)
            elif write.state is None:
                writes.delete(label, model(pk, _ALIAS + write.alias), unchanged)
            else:
                item = model(
                    pk,
                    _ALIAS + write.alias,
                    alias=write.alias,
                    version=write.state.version,
                    previous=list(write.state.previous),
                    revision=write.state.revision,
                )
                writes.put(label, item, unchanged)
        for number, stage in stage_updates.items():
            writes.update(
                _version_sk(number),
                model(pk, _version_sk(number)),
                [model.stage.set(Stage(stage).value)],
                model.pk.exists(),
            )
        writes.put("history", self._history_item(change), model.pk.does_not_exist())
        failed = writes.failed(self._transact("apply model change", writes.fill))
        if not failed or "history" in failed:
            # The history item is keyed by this change's id: if it exists, this very
            # transaction committed on an earlier attempt whose answer was lost.
            return
        # Report what the SQLite store would have found first: the model, then the aliases,
        # then the versions.
        if "model" in failed:
            raise NotFound(f"model {name!r} not found")
        for label in failed:
            if label.startswith(_ALIAS):
                raise Conflict(
                    f"alias {label[len(_ALIAS) :]!r} of model {name!r} was moved concurrently; "
                    "read it again and retry"
                )
        for label in failed:
            if label.startswith(_VERSION):
                raise NotFound(f"model {name!r} has no version {int(label[len(_VERSION) :])}")
        raise Conflict(f"change {change.change_id!r} of model {name!r} was already recorded")

    def list_history(
        self, name: str, max_results: int = MAX_PAGE_SIZE, page_token: str | None = None
    ) -> Page[AliasChange]:
        """Return the audit history oldest first, from one Query of the model's partition.

        Raises:
            NotFound: no such model.
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        pk = _model_pk(name)
        start_key: dict[str, dict[str, Any]] | None = None
        if page_token is not None:
            after = decode_token(page_token, ("after",))["after"]
            if not isinstance(after, str) or not after.startswith(_HISTORY):
                raise InvalidInput("invalid page token")
            start_key = {"pk": {"S": pk}, "sk": {"S": after}}
        model = self._models.TrackingItem
        with _calling("list model history"):
            items = list(
                model.query(
                    pk,
                    model.sk.startswith(_HISTORY),
                    consistent_read=True,
                    limit=limit + 1,
                    last_evaluated_key=start_key,
                )
            )
        if not items:
            self._require_model(name)
        changes = [_change_from(item) for item in items[:limit]]
        token = encode_token({"after": items[limit - 1].sk}) if len(items) > limit else None
        return Page(items=changes, next_token=token)

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        """Set the description and merge ``tags`` key by key in one conditional UpdateItem.

        Merging in the update expression (``SET tags.#k = :v``) rather than read-modify-write
        means two concurrent tag updates never drop each other's keys. The item is read first
        so that its size with the merged tags can be checked (see ``_update_tagged``).

        Raises:
            NotFound: no such model.
            InvalidInput: the model item would grow past ``MAX_ITEM_BYTES``.
        """
        if _description_and_tags(self._models.TrackingItem, description, tags):
            self._update_tagged(
                _model_pk(name),
                _MODEL_SK,
                description,
                tags,
                what=f"model {name!r}",
                missing=lambda: NotFound(f"model {name!r} not found"),
            )
        return self.get_model(name)

    def update_version(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Set the description and merge ``tags`` key by key in one conditional UpdateItem.

        Raises:
            NotFound: no such model or version.
            InvalidInput: the version item would grow past ``MAX_ITEM_BYTES``.
        """
        if not _description_and_tags(self._models.TrackingItem, description, tags):
            return self.get_version(name, version)
        item = self._update_tagged(
            _model_pk(name),
            _version_sk(version),
            description,
            tags,
            what=f"model {name!r} version {version}",
            missing=lambda: self._missing_version(name, version),
        )
        # UpdateItem answers with the new item (ALL_NEW), so no read follows.
        return _version_from(item)

    def _update_tagged(
        self,
        pk: str,
        sk: str,
        description: str | None,
        tags: Mapping[str, str] | None,
        *,
        what: str,
        missing: Callable[[], TrackingError],
    ) -> Any:
        """Merge tags into (and set the description of) a model or version item, bounded.

        Tags merge into a map on the item, so without a bound repeated updates would grow it
        past DynamoDB's 400 KB item limit (DynamoDB then refuses every later write of the item).
        The item is read, its size with the change computed by DynamoDB's rules, and the update
        made only if the tag map still has the size read: tags are never removed, so an
        unchanged count means an unchanged key set and the size computed holds. A concurrent
        tag update makes the condition fail, and the check runs again on the new item.

        Raises:
            InvalidInput: the item would be larger than ``MAX_ITEM_BYTES`` (nothing written).
            Conflict: other writers kept changing the tags.
            The error ``missing`` returns: no such item.
        """
        model = self._models.TrackingItem
        for _ in range(UPDATE_ATTEMPTS):
            with _calling("update model"):
                try:
                    current: Any = model.get(pk, sk, consistent_read=True)
                except DoesNotExist:
                    raise missing() from None
            stored_tags = dict(current.tags.as_dict()) if current.tags is not None else None
            merged = {**(stored_tags or {}), **(tags or {})}
            check_tags(merged, what)
            current.tags = merged
            if description is not None:
                current.description = description
            _check_item_size(current.serialize(), what)
            unchanged = (
                model.tags.does_not_exist()
                if stored_tags is None
                else size(model.tags) == len(stored_tags)  # type: ignore[no-untyped-call]
            )
            item = model(pk, sk)
            try:
                item.update(
                    actions=_description_and_tags(model, description, tags),
                    condition=model.pk.exists() & unchanged,
                )
            except UpdateError as error:
                if _is_conditional_failure(error):
                    continue  # deleted, or tags changed meanwhile: read again
                raise _unavailable("update model", error) from error
            except (PynamoDBException, BotoCoreError, ClientError) as error:
                raise _unavailable("update model", error) from error
            return item
        raise Conflict(f"the tags of {what} are being changed concurrently; retry")

    # -- idempotency records -----------------------------------------------------------------

    def claim(
        self, key: str, fingerprint: str, now: int, expires_at: int
    ) -> IdempotencyRecord | None:
        """A conditional put (new or expired key); else a consistent read of the holder."""
        model = self._models.TrackingItem
        item = model(
            _idempotency_pk(key),
            _IDEMPOTENCY,
            fingerprint=fingerprint,
            status="in_progress",
            expires_at=expires_at,
        )
        for _ in range(3):
            try:
                item.save(condition=model.pk.does_not_exist() | (model.expires_at < now))
            except PutError as error:
                if not _is_conditional_failure(error):
                    raise _unavailable("claim idempotency key", error) from error
            except (PynamoDBException, BotoCoreError, ClientError) as error:
                raise _unavailable("claim idempotency key", error) from error
            else:
                return None
            with _calling("get idempotency key"):
                try:
                    held = model.get(_idempotency_pk(key), _IDEMPOTENCY, consistent_read=True)
                except DoesNotExist:
                    continue  # released in between: claim again
            return _idempotency_from(key, held)
        raise Conflict("an Idempotency-Key is being claimed and released concurrently; retry")

    def complete(
        self, key: str, fingerprint: str, status: int, body: str, expires_at: int | None = None
    ) -> None:
        model = self._models.TrackingItem
        item = model(_idempotency_pk(key), _IDEMPOTENCY)
        actions: list[Action] = [
            model.status.set("completed"),
            model.response_status.set(status),
            model.response_body.set(body),
        ]
        if expires_at is not None:
            actions.append(model.expires_at.set(expires_at))
        try:
            item.update(actions=actions, condition=model.fingerprint == fingerprint)
        except UpdateError as error:
            if _is_conditional_failure(error):
                return  # expired and taken over (or released): nothing to record
            raise _unavailable("complete idempotency key", error) from error
        except (PynamoDBException, BotoCoreError, ClientError) as error:
            raise _unavailable("complete idempotency key", error) from error

    def release(self, key: str) -> None:
        model = self._models.TrackingItem
        item = model(_idempotency_pk(key), _IDEMPOTENCY)
        try:
            item.delete(condition=model.status == "in_progress")
        except DeleteError as error:
            if _is_conditional_failure(error):
                return
            raise _unavailable("release idempotency key", error) from error
        except (PynamoDBException, BotoCoreError, ClientError) as error:
            raise _unavailable("release idempotency key", error) from error


# -- registry items ---------------------------------------------------------------------------


class _Writes:
    """The items of one TransactWriteItems, each with a label for its cancellation reason.

    pynamodb sends condition checks, then deletes, then puts, then updates, whatever order they
    were added in; DynamoDB reports one reason per item in request order, so the labels are
    sorted the same way.
    """

    _CHECK, _DELETE, _PUT, _UPDATE = range(4)

    def __init__(self) -> None:
        self._items: list[tuple[int, str, Callable[[TransactWrite], None]]] = []

    def check(self, label: str, model: Any, pk: str, sk: str, condition: Condition) -> None:
        def add(transaction: TransactWrite) -> None:
            transaction.condition_check(model, pk, sk, condition=condition)

        self._items.append((self._CHECK, label, add))

    def delete(self, label: str, item: Any, condition: Condition) -> None:
        def add(transaction: TransactWrite) -> None:
            transaction.delete(item, condition=condition)

        self._items.append((self._DELETE, label, add))

    def put(self, label: str, item: Any, condition: Condition) -> None:
        def add(transaction: TransactWrite) -> None:
            transaction.save(item, condition=condition)

        self._items.append((self._PUT, label, add))

    def update(self, label: str, item: Any, actions: list[Action], condition: Condition) -> None:
        def add(transaction: TransactWrite) -> None:
            transaction.update(item, actions=actions, condition=condition)

        self._items.append((self._UPDATE, label, add))

    def fill(self, transaction: TransactWrite) -> None:
        for _, _, add in self._items:
            add(transaction)

    def failed(self, codes: Sequence[str | None]) -> list[str]:
        """The labels of the items whose condition failed, in the order they were added."""
        if not codes:
            return []
        ordered = sorted(self._items, key=lambda entry: entry[0])
        failed = {
            label for (_, label, _), code in zip(ordered, codes, strict=True) if code is not None
        }
        return [label for _, label, _ in self._items if label in failed]


def _description_and_tags(
    model: Any, description: str | None, tags: Mapping[str, str] | None
) -> list[Action]:
    actions: list[Action] = [model.tags[key].set(value) for key, value in (tags or {}).items()]
    if description is not None:
        actions.append(model.description.set(description))
    return actions


def _version_item(model: Any, version: ModelVersion) -> Any:
    return model(
        _model_pk(version.name),
        _version_sk(version.version),
        name=version.name,
        version=version.version,
        run_id=version.run_id,
        experiment_name=version.experiment_name,
        artifact_name=version.artifact_name,
        artifact_uri=version.artifact_uri,
        sha256=version.sha256,
        size=version.size,
        flavor=Flavor(version.flavor).value,
        signature_json=json.dumps([spec.model_dump() for spec in version.signature]),
        description=version.description,
        # Always present (maybe empty): tag updates set keys inside it with a document path.
        tags=dict(version.tags),
        metadata_json=json.dumps(version.metadata),
        stage=Stage(version.stage).value,
        created_at=version.created_at,
        actor=version.actor,
    )


def _version_from(item: Any) -> ModelVersion:
    return ModelVersion(
        name=item.name,
        version=int(item.version),
        run_id=item.run_id,
        experiment_name=item.experiment_name,
        artifact_name=item.artifact_name,
        artifact_uri=item.artifact_uri,
        sha256=item.sha256,
        size=int(item.size),
        flavor=Flavor(item.flavor),
        signature=[FeatureSpec(**spec) for spec in json.loads(item.signature_json or "[]")],
        description=item.description,
        tags=dict(item.tags.as_dict()) if item.tags is not None else {},
        metadata=json.loads(item.metadata_json or "{}"),
        stage=Stage(item.stage),
        created_at=int(item.created_at),
        actor=item.actor,
    )


def _model_from(item: Any, aliases: Mapping[str, int]) -> RegisteredModel:
    return RegisteredModel(
        name=item.name,
        created_at=int(item.created_at),
        updated_at=int(item.updated_at),
        latest_version=int(item.latest_version),
        description=item.description,
        tags=dict(item.tags.as_dict()) if item.tags is not None else {},
        aliases=dict(aliases),
    )


def _change_from(item: Any) -> AliasChange:
    return AliasChange(
        name=item.name,
        action=HistoryAction(item.action),
        alias=item.alias,
        from_version=None if item.from_version is None else int(item.from_version),
        to_version=None if item.to_version is None else int(item.to_version),
        actor=item.actor,
        timestamp=int(item.timestamp),
        reason=item.reason,
        change_id=item.change_id,
    )


def _idempotency_from(key: str, item: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=key,
        fingerprint=item.fingerprint,
        status=item.status,
        response_status=None if item.response_status is None else int(item.response_status),
        response_body=item.response_body,
        expires_at=int(item.expires_at),
    )
