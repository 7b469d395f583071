"""Experiments, runs, params, tags, datasets and artifact records on DynamoDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist, PutError, PynamoDBException, UpdateError
from pynamodb.transactions import TransactWrite

from tracking.clock import now_ms
from tracking.entities import Artifact, Dataset, Experiment, Metric, Page, RunRecord, RunStatus
from tracking.errors import AlreadyExists, Conflict, InvalidInput, NotFound, StoreUnavailable
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.dynamodb import schema
from tracking.stores.dynamodb.base import LIST_RUNS_CONCURRENCY
from tracking.stores.dynamodb.errors import _calling, _is_conditional_failure, _unavailable
from tracking.stores.dynamodb.history import CHUNKED_FORMAT
from tracking.stores.dynamodb.keys import (
    _ARTIFACT,
    _DATASET,
    _EXPERIMENT_SK,
    _EXPERIMENTS_GSI_PK,
    _METRIC,
    _PARAM,
    _RUN_SK,
    _TAG,
    _chunks,
    _experiment_pk,
    _run_pk,
    _runs_gsi_pk,
    _runs_gsi_sk,
)
from tracking.stores.dynamodb.metrics import DynamoDBMetrics
from tracking.stores.dynamodb.writes import (
    BATCH_GET_LIMIT,
    TRANSACTION_LIMIT,
    UNPROCESSED_RETRY_ATTEMPTS,
    _check_item_size,
)
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MetadataStore

# -- item -> entity ---------------------------------------------------------------------------


def _experiment_from(item: Any) -> Experiment:
    tags = item.tags.as_dict() if item.tags is not None else {}
    return Experiment(
        experiment_id=item.experiment_id,
        name=item.name,
        created_at=int(item.created_at),
        tags=dict(tags),
    )


def _run_from(items: Iterable[Any]) -> RunRecord | None:
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
    return RunRecord(
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


class DynamoDBMetadata(DynamoDBMetrics, MetadataStore):
    """Experiments and runs in the tracking table: one partition per run (see ``schema``)."""

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
            created_at=now_ms(),
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
    ) -> RunRecord:
        """Create a ``RUNNING`` run and its tags in one transaction.

        Raises:
            AlreadyExists: ``run_id`` is taken.
            NotFound: the experiment or ``parent_run_id`` does not exist.
        """
        model = self._models.TrackingItem
        run = RunRecord(
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
            history_format=CHUNKED_FORMAT,  # no legacy per-point history to read (metrics.py)
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

    def get_run(self, run_id: str) -> RunRecord:
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
    ) -> Page[RunRecord]:
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
        points then go into their chunk items, one UpdateItem per chunk (``metrics.py``), and
        each key's latest-metric item is replaced only by a newer point.

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

    @staticmethod
    def _raise_param_conflicts(run_id: str, keys: Sequence[str]) -> None:
        if keys:
            names = ", ".join(repr(key) for key in sorted(keys))
            raise Conflict(
                f"run {run_id!r} already has a different value for param {names}; "
                "params are write-once"
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
