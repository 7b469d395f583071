"""Plumbing shared by the DynamoDB store's parts: tables, transactions, lifecycle."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from tracking.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from tracking.stores._tokens import decode_token
from tracking.stores.dynamodb import schema
from tracking.stores.dynamodb.errors import _calling, _error_code, _unavailable
from tracking.stores.dynamodb.keys import _RUN_SK, _run_pk
from tracking.stores.dynamodb.queries import query_page
from tracking.stores.dynamodb.tables import _Models, _resolve_region
from tracking.stores.dynamodb.writes import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS

UPDATE_ATTEMPTS = 5
#: Partition queries ``list_runs`` sends at once to assemble a page of complete runs.
LIST_RUNS_CONCURRENCY = 8
#: How long ``initialize`` waits for new tables to become ACTIVE.
TABLE_ACTIVE_TIMEOUT_SECONDS = 300.0


class DynamoDBBase:
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
        stream = definition.get("StreamSpecification")
        if stream and not description.get("StreamSpecification", {}).get("StreamEnabled"):
            # A table of an earlier release: its outbox events need the stream to reach
            # EventBridge. (A table streaming another view type is left as it is.)
            client.update_table(TableName=name, StreamSpecification=stream)
            self._wait_active(client, name)

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

    def _backoff(self, attempt: int) -> None:
        """Sleep before re-sending unprocessed items: exponential, with equal jitter."""
        delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        # Equal jitter: grows exponentially yet spreads concurrent writers apart.
        self._sleep(delay / 2 + random.uniform(0, delay / 2))

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
        return query_page(
            self._models.TrackingItem,
            gsi_pk,
            action=action,
            limit=limit,
            start_key=start_key,
            index_name=schema.GSI1_NAME,
        )
