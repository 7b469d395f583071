"""Metric history on the metrics table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracking.entities import Metric, Page
from tracking.errors import InvalidInput, StoreUnavailable
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.dynamodb import schema
from tracking.stores.dynamodb.base import DynamoDBBase
from tracking.stores.dynamodb.errors import _calling
from tracking.stores.dynamodb.keys import _chunks, _metric_pk
from tracking.stores.dynamodb.writes import BATCH_WRITE_LIMIT, UNPROCESSED_RETRY_ATTEMPTS
from tracking.stores.ports.metadata import MAX_PAGE_SIZE


class DynamoDBMetrics(DynamoDBBase):
    """Metric points in the metrics table (``schema``), written in batches, read in step order."""

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
