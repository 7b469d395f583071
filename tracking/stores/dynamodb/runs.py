"""Reading runs on DynamoDB: one run, and searches evaluated on the run summaries of ``gsi1``.

A search never sends one request per run for runs whose summary is ``ok`` (``summary.py``):
the experiment's run items come from ``gsi1`` (1 MB per Query page) with their summaries, the
predicate runs on them here, and the order is applied here. Two ways:

- **Index order** (no ``order_by``: newest start first, then run id, which is ``gsi1``'s own
  order). Pages of ``gsi1`` are read until the page is full; the token is the last run's
  index key, so page N reads from where page N-1 stopped.
- **Any other order.** Every run of the experiment is read (summaries only), filtered and
  sorted; the token holds the last run's order values (``tracking.run_query``), so page N is
  the runs strictly after page N-1's last one whatever was logged in between.

A run whose summary is not ``ok`` (over its budget, or written before summaries) is read from
its partition: one more Query for that run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pynamodb.exceptions import DoesNotExist

from tracking.entities import Experiment, Page, RunRecord
from tracking.errors import InvalidInput, NotFound
from tracking.run_query import RunQuery, decode_cursor, matches, page_of
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.dynamodb import schema
from tracking.stores.dynamodb.base import LIST_RUNS_CONCURRENCY, DynamoDBBase
from tracking.stores.dynamodb.errors import _calling
from tracking.stores.dynamodb.keys import (
    _EXPERIMENT_SK,
    _RUN_SK,
    _experiment_pk,
    _run_pk,
    _runs_gsi_pk,
)
from tracking.stores.dynamodb.summary import (
    _experiment_from,
    is_ok,
    run_from_summary,
    split_partition,
)
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

#: Run items per ``gsi1`` Query page when a search has no filter (then a page of N runs needs
#: N + 1 items); with a filter, pages are DynamoDB's own (1 MB).
_UNFILTERED_EXTRA = 1


class DynamoDBRuns(DynamoDBBase):
    """``get_run`` and ``search_runs`` (and so ``list_runs``) from run summaries."""

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

    def get_run(self, run_id: str) -> RunRecord:
        """Return the run: one GetItem, or one Query of its partition if its summary is not ok.

        Raises:
            NotFound: no such run.
        """
        model = self._models.TrackingItem
        with _calling("get run"):
            try:
                item = model.get(_run_pk(run_id), _RUN_SK, consistent_read=True)
            except DoesNotExist:
                raise NotFound(f"run {run_id!r} not found") from None
        return self._complete(item)

    def _complete(self, item: Any) -> RunRecord:
        if is_ok(item):
            return run_from_summary(item)
        head, rest = split_partition(self._query_partition(item.run_id))
        if head is None:
            raise NotFound(f"run {item.run_id!r} not found")
        return run_from_summary(head, rest)

    def _complete_all(self, items: list[Any]) -> list[RunRecord]:
        """Complete runs for run items, querying partitions (a few at once) only where needed."""
        partial = [item for item in items if not is_ok(item)]
        completed: dict[str, RunRecord] = {}
        if partial:
            # Latency-bound: a handful at a time; the botocore client is thread-safe.
            with ThreadPoolExecutor(max_workers=LIST_RUNS_CONCURRENCY) as pool:
                for run in pool.map(self._complete, partial):
                    completed[run.run_id] = run
        return [completed.get(item.run_id) or run_from_summary(item) for item in items]

    def _run_items(
        self, experiment_id: str, start_key: dict[str, Any] | None, page_size: int | None
    ) -> Iterator[Any]:
        """The experiment's run items in ``gsi1`` order, fetched page by page as consumed."""
        model = self._models.TrackingItem
        with _calling("search runs"):
            yield from model.query(
                _runs_gsi_pk(experiment_id),
                index_name=schema.GSI1_NAME,
                last_evaluated_key=start_key,
                page_size=page_size,
            )

    def search_runs(
        self,
        experiment_name: str,
        query: RunQuery,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[RunRecord]:
        """Return runs that match ``query``, evaluated on summaries (see the module docstring).

        Raises:
            NotFound: no such experiment.
            InvalidInput: bad ``max_results`` or a token that is not this query's.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        if not query.index_ordered:
            if page_token is not None:
                decode_cursor(query, page_token)  # refuse a bad token before any request
            experiment = self.get_experiment(experiment_name)
            items = list(self._run_items(experiment.experiment_id, None, None))
            return page_of(self._complete_all(items), query, limit, page_token)
        start = self._index_cursor(query, page_token)
        experiment = self.get_experiment(experiment_name)
        start_key = None
        if start is not None:
            start_key = {
                "gsi1pk": {"S": _runs_gsi_pk(experiment.experiment_id)},
                "gsi1sk": {"S": start[0]},
                "pk": {"S": _run_pk(start[1])},
                "sk": {"S": _RUN_SK},
            }
        page_size = limit + _UNFILTERED_EXTRA if query.predicate is None else None
        found: list[tuple[Any, RunRecord]] = []
        for item, run in self._completed(
            self._run_items(experiment.experiment_id, start_key, page_size)
        ):
            if matches(query, run):
                found.append((item, run))
                if len(found) > limit:
                    break
        token = None
        if len(found) > limit:
            last = found[limit - 1][0]
            token = encode_token({"q": query.fingerprint, "order": last.gsi1sk, "run": last.run_id})
        return Page[RunRecord](items=[run for _, run in found[:limit]], next_token=token)

    def _completed(self, items: Iterable[Any]) -> Iterator[tuple[Any, RunRecord]]:
        for item in items:
            yield item, self._complete(item)

    @staticmethod
    def _index_cursor(query: RunQuery, page_token: str | None) -> tuple[str, str] | None:
        if page_token is None:
            return None
        state = decode_token(page_token, ("q", "order", "run"))
        if state["q"] != query.fingerprint:
            raise InvalidInput("page token belongs to a different search")
        order, run_id = state["order"], state["run"]
        if (
            not isinstance(order, str)
            or not isinstance(run_id, str)
            or not order.endswith(f"#{run_id}")
        ):
            raise InvalidInput("invalid page token")
        return order, run_id
