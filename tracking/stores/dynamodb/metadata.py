"""Experiments, runs, params, tags, datasets and artifact records on DynamoDB."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from tracking.clock import now_ms
from tracking.entities import Artifact, Dataset, Experiment, Metric, Page, RunRecord, RunStatus
from tracking.errors import AlreadyExists, Conflict, NotFound, StoreUnavailable
from tracking.stores._tokens import check_page_size, encode_token
from tracking.stores.dynamodb import schema
from tracking.stores.dynamodb.base import UPDATE_ATTEMPTS
from tracking.stores.dynamodb.errors import (
    _calling,
    conditional_write,
)
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
from tracking.stores.dynamodb.runs import DynamoDBRuns
from tracking.stores.dynamodb.summary import (
    OK,
    OVERFLOW,
    SUMMARY_BUDGET_BYTES,
    _experiment_from,
    artifact_entry,
    dataset_entry,
    entries_bytes,
    entry_bytes,
    metric_entry,
    newer_bound,
)
from tracking.stores.dynamodb.writes import (
    BATCH_GET_LIMIT,
    TRANSACTION_LIMIT,
    UNPROCESSED_RETRY_ATTEMPTS,
    _check_item_size,
    _Writes,
)
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MetadataStore

#: Latest metrics one UpdateItem sets together: its condition names each (4 KB expressions).
LATEST_PER_UPDATE = 20

# -- item -> entity ---------------------------------------------------------------------------


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


class DynamoDBMetadata(DynamoDBRuns, DynamoDBMetrics, MetadataStore):
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
        with conditional_write("create experiment") as taken:
            item.save(condition=model.pk.does_not_exist())
        if taken.failed:
            raise AlreadyExists(f"experiment {name!r} already exists")
        return experiment

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
        summary_bytes = entries_bytes(dict(first_tags))
        fits = summary_bytes <= SUMMARY_BUDGET_BYTES
        head.s_state = OK if fits else OVERFLOW
        head.s_bytes = summary_bytes if fits else 0
        # Always present (maybe empty): writes set keys inside them with document paths.
        head.s_params, head.s_metrics, head.s_datasets, head.s_artifacts = {}, {}, {}, {}
        head.s_tags = dict(first_tags) if fits else {}

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
        with conditional_write("set run status") as missing:
            item.update(
                actions=[model.status.set(RunStatus(status).value), end_action],
                condition=model.pk.exists(),
            )
        if missing.failed:
            raise NotFound(f"run {run_id!r} not found")

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
        # One slot of each transaction is the run item (its summary, or a check).
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
            items = _Writes()
            entries: dict[str, dict[str, str]] = {"s_params": {}, "s_tags": {}}
            for sk, value in chunk:
                item = model(_run_pk(run_id), sk, value=value)
                if sk.startswith(_PARAM):
                    entries["s_params"][sk[len(_PARAM) :]] = value
                    # Write-once: same value again is a harmless overwrite, another refuses.
                    items.put(sk, item, model.pk.does_not_exist() | (model.value == value))
                else:
                    entries["s_tags"][sk[len(_TAG) :]] = value
                    items.put(sk, item, None)
            failed = self._summary_transaction("log batch", run_id, entries, items)
            self._raise_param_conflicts(
                run_id, [label[len(_PARAM) :] for label in failed if label.startswith(_PARAM)]
            )

    def _summary_transaction(
        self,
        action: str,
        run_id: str,
        entries: Mapping[str, Mapping[str, str]],
        writes: _Writes,
    ) -> list[str]:
        """Commit ``writes`` (items of the run's partition) with the run item in one transaction.

        While the run is ``ok`` and the summary's budget allows, the run item's maps get
        ``entries`` (``{map attribute: {key: value}}``) in that transaction; otherwise the run
        is marked ``overflow`` (once) and the run item is only checked.

        Returns:
            The labels of ``writes`` whose conditions failed (then nothing was written).

        Raises:
            NotFound: no such run (nothing written).
        """
        model = self._models.TrackingItem
        added = sum(entries_bytes(values) for values in entries.values())
        summarise = True
        for _ in range(UPDATE_ATTEMPTS):
            attempt = writes.copy()
            if summarise:
                actions: list[Action] = [
                    getattr(model, attribute)[key].set(value)
                    for attribute, values in entries.items()
                    for key, value in values.items()
                ]
                actions.append(model.s_bytes.add(added))
                attempt.update(
                    "run",
                    model(_run_pk(run_id), _RUN_SK),
                    actions,
                    model.pk.exists()
                    & (model.s_state == OK)
                    & (model.s_bytes <= SUMMARY_BUDGET_BYTES - added),
                )
            else:
                attempt.check("run", model, _run_pk(run_id), _RUN_SK, self._not_summarised())
            failed = attempt.failed(self._transact(action, attempt.fill))
            if "run" not in failed:
                return failed
            state = self._summary_state(run_id)
            others = [label for label in failed if label != "run"]
            if others:
                return others
            if summarise and state == OK:
                self._mark_overflow(run_id)  # over the budget: from now on, partition only
                summarise = False
            else:
                # Overflow or not yet upgraded; or an upgrade made it ok meanwhile.
                summarise = state == OK
        raise Conflict(f"run {run_id!r} is being changed concurrently; retry")

    def _not_summarised(self) -> Condition:
        """The run exists and its summary is not kept (overflow, or written before summaries).

        Writes that go to the partition only are conditioned on it, so none of them can land
        after ``tracking init`` has made the summary the whole record (``upgrade.py``).
        """
        model = self._models.TrackingItem
        condition: Condition = model.pk.exists() & (
            model.s_state.does_not_exist() | (model.s_state == OVERFLOW)
        )
        return condition

    def _summary_state(self, run_id: str) -> str | None:
        """The run item's ``s_state`` (``None``: written before summaries).

        Raises:
            NotFound: no such run.
        """
        state = self._run_item(run_id, ["s_state"]).s_state
        return None if state is None else str(state)

    def _mark_overflow(self, run_id: str) -> None:
        model = self._models.TrackingItem
        with conditional_write("log batch"):
            model(_run_pk(run_id), _RUN_SK).update(
                actions=[model.s_state.set(OVERFLOW)], condition=model.s_state == OK
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
        """Keep, per key, the point with the highest (step, timestamp) as the run's latest.

        In the summary. The common cases take one UpdateItem for up to ``LATEST_PER_UPDATE``
        keys: every key already there and older (a training loop's next step), or every key new
        (its first step; their bytes are counted against the budget). Anything else goes key by
        key: one conditional UpdateItem (two the first time a key is seen). A run that is not
        ``ok`` keeps new keys in ``METRIC#`` items, written only while the run item says so
        (one transaction).
        """
        pending: dict[str, Metric] = {}
        points = list(latest.items())
        for start in range(0, len(points), LATEST_PER_UPDATE):
            group = dict(points[start : start + LATEST_PER_UPDATE])
            if not self._latest_in_one_update(run_id, group):
                pending.update(group)
        self._write_latest_one_by_one(run_id, pending)

    def _latest_in_one_update(self, run_id: str, group: Mapping[str, Metric]) -> bool:
        """Write a group of latest metrics in one UpdateItem if all are known or all new."""
        model: Any = self._models.TrackingItem
        entries = {key: metric_entry(metric) for key, metric in group.items()}
        actions = [model.s_metrics[key].set(entry) for key, entry in entries.items()]
        known: Any = None
        for key, metric in group.items():
            newer = model.s_metrics[key].exists() & (model.s_metrics[key] < newer_bound(metric))
            known = newer if known is None else known & newer
        with conditional_write("log metrics") as updated:
            model(_run_pk(run_id), _RUN_SK).update(actions=actions, condition=known)
        if not updated.failed:
            return True
        size = entries_bytes(entries)
        fresh: Any = (model.s_state == OK) & (model.s_bytes <= SUMMARY_BUDGET_BYTES - size)
        for key in group:
            fresh = fresh & model.s_metrics[key].does_not_exist()
        with conditional_write("log metrics") as added:
            model(_run_pk(run_id), _RUN_SK).update(
                actions=[*actions, model.s_bytes.add(size)], condition=fresh
            )
        return not added.failed

    def _write_latest_one_by_one(self, run_id: str, latest: Mapping[str, Metric]) -> None:
        model: Any = self._models.TrackingItem  # map entries are document paths, not str
        for key, metric in latest.items():
            entry = metric_entry(metric)
            for _ in range(UPDATE_ATTEMPTS):
                with conditional_write("log metrics") as known:
                    model(_run_pk(run_id), _RUN_SK).update(
                        actions=[model.s_metrics[key].set(entry)],
                        condition=model.s_metrics[key].exists()
                        & (model.s_metrics[key] < newer_bound(metric)),
                    )
                if not known.failed:
                    break
                size = entry_bytes(key, entry)
                with conditional_write("log metrics") as new:
                    model(_run_pk(run_id), _RUN_SK).update(
                        actions=[model.s_metrics[key].set(entry), model.s_bytes.add(size)],
                        condition=(model.s_state == OK)
                        & model.s_metrics[key].does_not_exist()
                        & (model.s_bytes <= SUMMARY_BUDGET_BYTES - size),
                    )
                if not new.failed:
                    break
                item = self._run_item(run_id, ["s_state", "s_metrics"])
                stored = item.s_metrics.as_dict() if item.s_metrics is not None else {}
                if key in stored:
                    if stored[key] >= newer_bound(metric):
                        break  # the stored latest point is newer: keeping it is the point
                    continue  # added concurrently: update it
                if item.s_state == OK:
                    self._mark_overflow(run_id)
                if self._put_latest_metric_item(run_id, metric):
                    break
            else:
                raise Conflict(f"run {run_id!r} is being changed concurrently; retry")

    def _put_latest_metric_item(self, run_id: str, metric: Metric) -> bool:
        """Write a ``METRIC#`` item unless a newer point is stored; False if the run is ``ok``."""
        model = self._models.TrackingItem
        item = model(
            _run_pk(run_id),
            _METRIC + metric.key,
            value=repr(float(metric.value)),
            step=metric.step,
            timestamp=metric.timestamp,
        )
        newer = (
            model.pk.does_not_exist()
            | (model.step < metric.step)
            | ((model.step == metric.step) & (model.timestamp <= metric.timestamp))
        )
        writes = _Writes()
        writes.check("run", model, _run_pk(run_id), _RUN_SK, self._not_summarised())
        writes.put("metric", item, newer)
        failed = writes.failed(self._transact("log metrics", writes.fill))
        # A failed "metric" condition alone: the stored latest point is newer, and stays.
        return "run" not in failed

    def _run_item(self, run_id: str, attributes: list[str] | None = None) -> Any:
        """The run item, strongly consistent (only ``attributes`` when given).

        Raises:
            NotFound: no such run.
        """
        model = self._models.TrackingItem
        with _calling("get run"):
            try:
                # "pk" too: an item none of whose asked attributes exist comes back empty,
                # which pynamodb takes for a missing item.
                return model.get(
                    _run_pk(run_id),
                    _RUN_SK,
                    consistent_read=True,
                    attributes_to_get=None if attributes is None else ["pk", *attributes],
                )
            except DoesNotExist:
                raise NotFound(f"run {run_id!r} not found") from None

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

        writes = _Writes()
        writes.put("dataset", item, None)
        entries = {"s_datasets": {dataset.name: dataset_entry(dataset)}}
        self._summary_transaction("log dataset", run_id, entries, writes)

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

        writes = _Writes()
        writes.put("artifact", item, model.pk.does_not_exist())
        entries = {"s_artifacts": {artifact.name: artifact_entry(artifact)}}
        if self._summary_transaction("log artifact", run_id, entries, writes):
            if self._same_artifact(run_id, artifact):
                # This record, written by an earlier attempt whose answer was lost (a read
                # timeout); refusing it would make the caller delete the uploaded object.
                return
            raise AlreadyExists(f"run {run_id!r} already has an artifact named {artifact.name!r}")
