"""Metric history on the metrics table, in chunk items (layout and figures: ``history``).

Runs created before chunks existed may still have one item per point (the old release's layout)
until ``upgrade_metric_history`` converts them; reads merge both for such runs. A run created by
this release carries ``history_format = CHUNKED_FORMAT`` on its run item, which the read already
fetches to check that the run exists, so it costs no extra request to skip the legacy Query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from pynamodb.exceptions import DoesNotExist

from tracking.downsample import Row, check_max_points, downsample_rows, metrics_of_rows
from tracking.entities import Metric, Page
from tracking.errors import InvalidInput, NotFound, StoreUnavailable
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.dynamodb import schema
from tracking.stores.dynamodb.base import DynamoDBBase
from tracking.stores.dynamodb.errors import _calling, _error_code
from tracking.stores.dynamodb.history import (
    CHUNK_STEPS,
    CHUNKED_FORMAT,
    chunk_item,
    chunk_pk,
    chunk_start,
    chunk_updates,
    decode_chunk_rows,
    group_chunks,
    legacy_pk,
)
from tracking.stores.dynamodb.keys import _RUN_SK, _run_pk
from tracking.stores.dynamodb.writes import UNPROCESSED_RETRY_ATTEMPTS
from tracking.stores.ports.metadata import MAX_PAGE_SIZE

if TYPE_CHECKING:
    from tracking.stores.dynamodb.history_upgrade import UpgradeReport

#: UpdateItems of one batch (one per chunk touched) sent at once. Each is latency-bound and the
#: botocore client is thread-safe; 8 matches ``LIST_RUNS_CONCURRENCY``.
HISTORY_WRITE_CONCURRENCY = 1
#: Queries of a bulk read (one per run and key) sent at once.
HISTORY_READ_CONCURRENCY = 8

T = TypeVar("T")
R = TypeVar("R")


def _merge(legacy: Iterable[Row], chunked: Iterable[Row]) -> list[Row]:
    """One point per step in step order; a chunk point wins over a legacy one (it is newer:
    the upgrade never overwrites a chunk point, and this release writes only chunks)."""
    by_step = {row[0]: row for row in legacy}
    by_step.update((row[0], row) for row in chunked)
    return [by_step[step] for step in sorted(by_step)]


class DynamoDBMetrics(DynamoDBBase):
    """Metric points in chunk items of the metrics table, written with UpdateItem."""

    # -- plumbing ------------------------------------------------------------------------------

    def _metrics_client(self) -> Any:
        # Created here, in the calling thread, before any pool uses it: pynamodb builds the
        # client lazily and the lazy build itself is not thread-safe.
        return self._models.MetricPoint._get_connection().connection.client

    def _concurrently(self, work: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
        """``work`` over ``items``, a few at a time; the first failure is raised after all end."""
        if len(items) <= 1 or limit <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(limit, len(items))) as pool:
            return list(pool.map(work, items))

    def _history_format(self, run_id: str) -> int | None:
        """The run item's ``history_format`` (``None`` for a run of the old release).

        Raises:
            NotFound: no such run.
        """
        model = self._models.TrackingItem
        with _calling("get metric history"):
            try:
                item = model.get(
                    _run_pk(run_id),
                    _RUN_SK,
                    consistent_read=True,
                    attributes_to_get=["pk", "history_format"],
                )
            except DoesNotExist:
                raise NotFound(f"run {run_id!r} not found") from None
        return None if item.history_format is None else int(item.history_format)

    # -- writes --------------------------------------------------------------------------------

    def _write_metric_history(self, points: Sequence[Metric], run_id: str) -> None:
        """Write the points of one batch into their chunks (``_write_chunk``), chunk by chunk.

        A failure raises ``StoreUnavailable``; the SDK keeps the batch and re-sends all of it,
        which is safe (every write below is idempotent).
        """
        chunks = [
            (chunk_pk(run_id, key), start, by_offset)
            for (key, start), by_offset in group_chunks(points).items()
        ]
        self._metrics_client()
        self._concurrently(
            lambda chunk: self._write_chunk(*chunk), chunks, HISTORY_WRITE_CONCURRENCY
        )

    def _write_chunk(
        self, pk: str, start: int, by_offset: Mapping[int, Metric], *, keep_existing: bool = False
    ) -> None:
        """Points of one chunk: a conditional PutItem of the whole chunk when it looks new, else
        (or when it exists after all) UpdateItems ``SET p{o} = :v``.

        The put is only tried when the batch holds the chunk's first step (sequential logging
        starts a chunk there) and only succeeds if the item does not exist, so it never replaces
        another writer's points. The updates set one attribute per point: a re-sent point
        overwrites itself (no duplicates) and concurrent writers of one chunk set different
        attributes (nothing lost, no read-modify-write). ``keep_existing`` (the upgrade) never
        replaces a point already in the chunk.
        """
        client = self._metrics_client()
        table = schema.metrics_table_name(self.table_prefix)
        if 0 in by_offset:
            try:
                with _calling("log metrics"):
                    client.put_item(
                        TableName=table,
                        Item=chunk_item(pk, start, by_offset),
                        ConditionExpression="attribute_not_exists(pk)",
                    )
                return
            except StoreUnavailable as error:
                cause = error.__cause__
                if cause is None or _error_code(cause) != "ConditionalCheckFailedException":
                    raise
        for expression, values in chunk_updates(by_offset, keep_existing=keep_existing):
            with _calling("log metrics"):
                client.update_item(
                    TableName=table,
                    Key={"pk": {"S": pk}, "step": {"N": str(start)}},
                    UpdateExpression=expression,
                    ExpressionAttributeValues=values,
                )

    def _batch_write(self, requests: list[dict[str, Any]], action: str = "log metrics") -> None:
        """One BatchWriteItem of at most 25 requests (``{"PutRequest": ...}`` or
        ``{"DeleteRequest": ...}``), re-sending ``UnprocessedItems`` with backoff until done.

        pynamodb's own ``BatchWrite`` re-sends without any pause and stops after
        ``max_retry_attempts``; DynamoDB asks for exponential backoff, so the loop is ours.

        Raises:
            StoreUnavailable: DynamoDB failed, or kept requests unprocessed after retries.
        """
        client = self._metrics_client()
        table = schema.metrics_table_name(self.table_prefix)
        pending = requests
        for attempt in range(UNPROCESSED_RETRY_ATTEMPTS + 1):
            if attempt:
                self._backoff(attempt)
            with _calling(action):
                response = client.batch_write_item(RequestItems={table: pending})
            pending = (response or {}).get("UnprocessedItems", {}).get(table, [])
            if not pending:
                return
        raise StoreUnavailable(
            f"DynamoDB left {len(pending)} metric items unprocessed after "
            f"{UNPROCESSED_RETRY_ATTEMPTS} retries (throttled); {action} may be retried"
        )

    # -- reads ---------------------------------------------------------------------------------

    def _query_chunks(self, run_id: str, key: str, first_step: int, want: int | None) -> list[Row]:
        """Points from ``first_step`` on, in step order: all of them, or at least ``want``.

        Without ``want`` the Query has no Limit, so each page is DynamoDB's 1 MB (~27,000
        points): a 100,000-point history is 4 requests.
        """
        client = self._metrics_client()
        arguments: dict[str, Any] = {
            "TableName": schema.metrics_table_name(self.table_prefix),
            "KeyConditionExpression": "pk = :pk AND step >= :start",
            "ExpressionAttributeValues": {
                ":pk": {"S": chunk_pk(run_id, key)},
                ":start": {"N": str(chunk_start(first_step))},
            },
            "ConsistentRead": True,
        }
        if want is not None:
            # Enough chunks for ``want`` dense steps, plus the partial first one.
            arguments["Limit"] = want // CHUNK_STEPS + 2
        points: list[Row] = []
        while True:
            with _calling("get metric history"):
                response = client.query(**arguments)
            for item in response.get("Items", []):
                points.extend(row for row in decode_chunk_rows(item) if row[0] >= first_step)
            last = response.get("LastEvaluatedKey")
            if last is None or (want is not None and len(points) >= want):
                return points
            arguments["ExclusiveStartKey"] = last

    def _query_legacy(self, run_id: str, key: str, first_step: int, want: int | None) -> list[Row]:
        """The old release's one-item-per-point history from ``first_step`` on."""
        model = self._models.MetricPoint
        with _calling("get metric history"):
            items = list(
                model.query(
                    legacy_pk(run_id, key),
                    model.step >= first_step,
                    consistent_read=True,
                    limit=want,
                )
            )
        return [(int(item.step), float(item.value), int(item.timestamp)) for item in items]

    def _read_history(
        self, run_id: str, key: str, history_format: int | None, first_step: int = 0,
        want: int | None = None,
    ) -> list[Row]:  # fmt: skip
        """``(step, value, timestamp)`` rows in step order; entities are built by the callers,
        only for the points they return (a chart keeps 1,000 of 100,000)."""
        points = self._query_chunks(run_id, key, first_step, want)
        if history_format != CHUNKED_FORMAT:
            # Both lists hold every point of their kind up to their ``want``-th, so the first
            # ``want`` steps of the merge are right.
            points = _merge(self._query_legacy(run_id, key, first_step, want), points)
        return points if want is None else points[:want]

    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[Metric]:
        """Return one page of a metric's points in step order (the token holds the last step).

        Requests: one GetItem (the run), one Query of the chunks covering the page (more only
        when steps are sparse), and for a run of the old release one Query of its legacy items.

        Raises:
            NotFound: no such run.
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        first_step = 0
        if page_token is not None:
            step = decode_token(page_token, ("step",))["step"]
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise InvalidInput("invalid page token")
            first_step = step + 1
        history_format = self._history_format(run_id)
        rows = self._read_history(run_id, key, history_format, first_step, limit + 1)
        token = encode_token({"step": rows[limit - 1][0]}) if len(rows) > limit else None
        return Page(items=metrics_of_rows(key, rows[:limit]), next_token=token)

    def iter_metric_history(self, run_id: str, key: str) -> Iterator[Metric]:
        """Every point of a metric in step order, read in 1 MB Query pages (not 1,000-point
        pages: 100,000 points are ~5 requests instead of 100).

        Raises:
            NotFound: no such run.
        """
        return iter(
            metrics_of_rows(key, self._read_history(run_id, key, self._history_format(run_id)))
        )

    def get_downsampled_history(self, run_id: str, key: str, max_points: int) -> list[Metric]:
        """``downsample`` of the full history, picked from the decoded rows: entities only for
        the kept points.

        Raises:
            InvalidInput: bad ``max_points`` (nothing is read).
            NotFound: no such run.
        """
        check_max_points(max_points)
        rows = self._read_history(run_id, key, self._history_format(run_id))
        return metrics_of_rows(key, downsample_rows(rows, max_points))

    def _get_metric_histories(
        self, run_ids: Sequence[str], keys: Sequence[str], max_points: int | None
    ) -> dict[str, dict[str, list[Metric]]]:
        """Histories of several runs, each downsampled when ``max_points`` is given: one GetItem
        per run, then one Query per (run, key) (two for a run of the old release),
        ``HISTORY_READ_CONCURRENCY`` at a time; entities only for the points returned.

        Raises:
            NotFound: one of the runs does not exist.
        """
        unique = list(dict.fromkeys(run_ids))
        unique_keys = list(dict.fromkeys(keys))
        self._metrics_client()
        formats = self._concurrently(self._history_format, unique, HISTORY_READ_CONCURRENCY)
        tasks = [
            (run_id, key, history_format)
            for run_id, history_format in zip(unique, formats, strict=True)
            for key in unique_keys
        ]
        read = self._concurrently(
            lambda task: self._read_history(*task), tasks, HISTORY_READ_CONCURRENCY
        )
        histories: dict[str, dict[str, list[Metric]]] = {run_id: {} for run_id in unique}
        for (run_id, key, _), rows in zip(tasks, read, strict=True):
            kept = rows if max_points is None else downsample_rows(rows, max_points)
            histories[run_id][key] = metrics_of_rows(key, kept)
        return histories

    # -- upgrade -------------------------------------------------------------------------------

    def upgrade_metric_history(self) -> UpgradeReport:
        """Convert the old release's one-item-per-point history into chunks (``tracking init``).

        Idempotent and resumable; see ``tracking.stores.dynamodb.history_upgrade``.

        Returns:
            An ``UpgradeReport`` of what this call converted.

        Raises:
            StoreUnavailable: DynamoDB failed; running it again continues safely.
        """
        from tracking.stores.dynamodb.history_upgrade import upgrade_metric_history

        return upgrade_metric_history(self)
