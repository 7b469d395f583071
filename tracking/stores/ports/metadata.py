"""The ``MetadataStore`` port: what every metadata backend (SQLite, DynamoDB) must do.

Backends implement the abstract core; the convenience methods at the bottom delegate to it
(``log_metric`` -> ``log_batch``), as in MLflow's abstract store. The contract suite in
``tests/contract`` runs the same tests against every backend.

Shared rules:
- Inputs reaching a store are already validated by the SDK, but a store never trusts them for
  anything that touches a path or key: ids are generated here or by the SDK.
- One ``log_batch`` call is one write request with MLflow's per-request limits, checked here for
  every backend (``check_batch``); the SDK splits bigger calls (``split_batch``).
- A method that raises leaves the store as it was (one transaction, or conditions that fail
  before anything is applied).
- Listings return ``Page`` objects whose ``next_token`` is opaque and ``None`` on the last page.
- Backend failures (throttling after retries, timeouts, I/O errors) raise ``StoreUnavailable``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence

from tracking.downsample import check_max_points, downsample
from tracking.entities import (
    Artifact,
    Dataset,
    Experiment,
    Metric,
    Page,
    RunRecord,
    RunStatus,
    iter_pages,
)
from tracking.errors import AlreadyExists, InvalidInput
from tracking.run_query import ALL_RUNS, RunQuery
from tracking.validation import validate_name, validate_param_value, validate_tag_value

#: What one ``log_batch`` call (one write request) may carry: MLflow's LogBatch request limits,
#: so a batch that MLflow accepts is accepted here. The SDK splits bigger calls into chunks
#: (``split_batch``); the stores refuse them (``check_batch``) with ``InvalidInput``.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
#: Metric points, params and tags together.
MAX_ENTITIES_PER_BATCH = 1000
#: Page size used when a caller does not choose one.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: What one bulk history read (``get_metric_histories``) may ask for: a compare view of a few
#: runs. 10 runs of 100 keys is 1,000 histories, already seconds of reading on DynamoDB.
MAX_HISTORY_RUNS = 10
MAX_HISTORY_KEYS = 100


class MetadataStore(abc.ABC):
    """Experiments, runs, params, metrics with step history, tags, datasets, artifact records."""

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    def initialize(self) -> None:
        """Create the backing tables or schema when missing. Idempotent.

        Called by ``tracking init`` (and by the embedded default, whose file is local); never
        called implicitly on a request path of a remote backend.
        """

    @abc.abstractmethod
    def locations(self) -> frozenset[str]:
        """Names of where this store keeps data (tables, files), for redacting messages.

        An operator's error message may name them; a client must not learn them.
        """

    def close(self) -> None:  # noqa: B027  # optional hook: most backends hold nothing to release
        """Release connections. The store must not be used afterwards."""

    # -- experiments -------------------------------------------------------------------------

    @abc.abstractmethod
    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> Experiment:
        """Create an experiment with a new id.

        Raises:
            AlreadyExists: an experiment with this name exists (checked atomically).
        """

    @abc.abstractmethod
    def get_experiment(self, name: str) -> Experiment:
        """Return the experiment called ``name``.

        Raises:
            NotFound: no such experiment.
        """

    @abc.abstractmethod
    def list_experiments(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[Experiment]:
        """Return experiments ordered by name, ``max_results`` at most per page.

        Raises:
            InvalidInput: ``page_token`` was not produced by this store.
        """

    # -- runs --------------------------------------------------------------------------------

    @abc.abstractmethod
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
        """Create a ``RUNNING`` run in ``experiment`` with the given tags.

        Raises:
            AlreadyExists: ``run_id`` is taken.
            NotFound: ``parent_run_id`` names no run.
        """

    @abc.abstractmethod
    def set_run_status(self, run_id: str, status: RunStatus, end_time: int | None) -> None:
        """Set a run's status and end time.

        Raises:
            NotFound: no such run.
        """

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """Return the run with its params, latest metrics, tags, datasets and artifacts.

        Raises:
            NotFound: no such run.
        """

    @abc.abstractmethod
    def search_runs(
        self,
        experiment_name: str,
        query: RunQuery,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[RunRecord]:
        """Return complete runs of an experiment that match ``query``, in its order.

        Evaluated in the store: a page never costs one request per run, and page N costs what
        page 1 costs (the token is a keyset cursor: the last run's order values). Every backend
        returns exactly what ``tracking.search`` defines (the predicate and ``sort_runs``).

        Raises:
            NotFound: no such experiment.
            InvalidInput: bad ``max_results``, or a ``page_token`` that this store did not make
                for this same query.
        """

    def list_runs(
        self,
        experiment_name: str,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[RunRecord]:
        """Return complete runs of an experiment, newest start time first (ties: run id).

        Raises:
            NotFound: no such experiment.
            InvalidInput: bad ``page_token``.
        """
        return self.search_runs(experiment_name, ALL_RUNS, max_results, page_token)

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Write metric points, params and tags of one run.

        A metric point is identified by ``(run_id, key, step)``: writing the same point again
        replaces it, so a retried batch never duplicates. The run's latest value of a metric is
        the point with the highest step, then the highest timestamp.

        Params are write-once: logging the value a param already has is a no-op.

        One call is one write request, limited as MLflow's LogBatch is: at most
        ``MAX_METRICS_PER_BATCH`` (1000) metric points, ``MAX_PARAMS_PER_BATCH`` (100) params,
        ``MAX_TAGS_PER_BATCH`` (100) tags and ``MAX_ENTITIES_PER_BATCH`` (1000) of them in all;
        keys follow the name rule (1-128 characters) and param and tag values have at most
        6000 characters. The port checks this before the backend sees the batch, so every
        backend refuses the same batches; ``split_batch`` cuts a bigger one into valid calls.

        Raises:
            InvalidInput: a limit above is exceeded; the message names it (nothing written).
            NotFound: no such run (nothing written).
            Conflict: a param already has a different value (nothing written).
        """
        params = params or {}
        tags = tags or {}
        check_batch(metrics, params, tags)
        self._log_batch(run_id, metrics=metrics, params=params, tags=tags)

    @abc.abstractmethod
    def _log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric],
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> None:
        """The backend's write of a batch that ``check_batch`` accepted (see ``log_batch``)."""

    @abc.abstractmethod
    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[Metric]:
        """Return the points of one metric in step order.

        Raises:
            NotFound: no such run.
            InvalidInput: bad ``page_token``.
        """

    @abc.abstractmethod
    def log_dataset(self, run_id: str, dataset: Dataset) -> None:
        """Record a dataset version used by the run; the same name again replaces the record.

        Raises:
            NotFound: no such run.
        """

    @abc.abstractmethod
    def log_artifact(self, run_id: str, artifact: Artifact) -> None:
        """Record an uploaded artifact of the run.

        Raises:
            NotFound: no such run.
            AlreadyExists: the run already has an artifact with this name (artifacts are
                immutable).
        """

    # -- conveniences, delegating to the core ------------------------------------------------

    def get_or_create_experiment(self, name: str) -> Experiment:
        """Return the experiment called ``name``, creating it when missing (race-safe)."""
        from tracking.errors import NotFound

        try:
            return self.get_experiment(name)
        except NotFound:
            pass
        try:
            return self.create_experiment(name)
        except AlreadyExists:
            return self.get_experiment(name)

    def log_metric(self, run_id: str, metric: Metric) -> None:
        self.log_batch(run_id, metrics=[metric])

    def log_param(self, run_id: str, key: str, value: str) -> None:
        self.log_batch(run_id, params={key: value})

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.log_batch(run_id, tags={key: value})

    def iter_runs(self, experiment_name: str) -> Iterator[RunRecord]:
        """Yield every run of an experiment, page by page."""
        return iter_pages(lambda token: self.list_runs(experiment_name, MAX_PAGE_SIZE, token))

    def iter_metric_history(self, run_id: str, key: str) -> Iterator[Metric]:
        """Yield every point of a metric in step order, page by page.

        Backends whose pages are cheaper in bigger reads override this (DynamoDB reads 1 MB
        Query pages, SQLite one SELECT).

        Raises:
            NotFound: no such run.
        """
        return iter_pages(lambda token: self.get_metric_history(run_id, key, MAX_PAGE_SIZE, token))

    def get_downsampled_history(self, run_id: str, key: str, max_points: int) -> list[Metric]:
        """Return ``downsample(list(iter_metric_history(run_id, key)), max_points)``.

        Backends override it to pick the kept points from raw rows and build entities only for
        those (a chart of a 100,000-point history keeps at most ``max_points``).

        Raises:
            InvalidInput: ``max_points`` is not an integer of at least 2 (nothing is read).
            NotFound: no such run.
        """
        check_max_points(max_points)
        return downsample(list(self.iter_metric_history(run_id, key)), max_points)

    def get_metric_histories(
        self, run_ids: Sequence[str], keys: Sequence[str], max_points: int | None = None
    ) -> dict[str, dict[str, list[Metric]]]:
        """Return the history of each key of each run: ``{run_id: {key: [points]}}``.

        Every run and every key is in the answer (an empty list for a key a run never logged);
        repeated ids or keys are read once. At most ``MAX_HISTORY_RUNS`` runs and
        ``MAX_HISTORY_KEYS`` keys, checked before anything is read. With ``max_points`` each
        history is the one ``get_downsampled_history`` returns, else the full history.

        Raises:
            InvalidInput: no run or no key, too many, a key breaking the name rule, or a bad
                ``max_points``.
            NotFound: one of the runs does not exist.
        """
        check_history_request(run_ids, keys)
        if max_points is not None:
            check_max_points(max_points)
        return self._get_metric_histories(run_ids, keys, max_points)

    def _get_metric_histories(
        self, run_ids: Sequence[str], keys: Sequence[str], max_points: int | None
    ) -> dict[str, dict[str, list[Metric]]]:
        """The backend's bulk read of a request ``check_history_request`` accepted; by
        default one read per (run, key), one after the other."""
        return {
            run_id: {
                key: (
                    list(self.iter_metric_history(run_id, key))
                    if max_points is None
                    else self.get_downsampled_history(run_id, key, max_points)
                )
                for key in dict.fromkeys(keys)
            }
            for run_id in dict.fromkeys(run_ids)
        }


# -- per-request limits -------------------------------------------------------------------------


def check_batch(
    metrics: Sequence[Metric], params: Mapping[str, str], tags: Mapping[str, str]
) -> None:
    """Refuse a ``log_batch`` call that breaks a per-request limit (see ``log_batch``).

    Raises:
        InvalidInput: too many metric points, params, tags or entities in all, a key that
            breaks the name rule, or a param or tag value that is too long. The message names
            the limit.
    """
    for count, what, limit in (
        (len(metrics), "metric points", MAX_METRICS_PER_BATCH),
        (len(params), "params", MAX_PARAMS_PER_BATCH),
        (len(tags), "tags", MAX_TAGS_PER_BATCH),
        (len(metrics) + len(params) + len(tags), "metric points, params and tags in all",
         MAX_ENTITIES_PER_BATCH),
    ):  # fmt: skip
        if count > limit:
            raise InvalidInput(
                f"{count} {what} in one request; the limit is {limit} "
                "(split the batch across requests)"
            )
    for key, value in params.items():
        validate_name(key, "param key")
        validate_param_value(key, value)
    for key, value in tags.items():
        validate_name(key, "tag key")
        validate_tag_value(key, value)
    for metric in metrics:
        validate_name(metric.key, "metric key")


def check_history_request(run_ids: Sequence[str], keys: Sequence[str]) -> None:
    """Refuse a bulk history read that is empty or too big (see ``get_metric_histories``).

    Raises:
        InvalidInput: the message names the field (``run_ids`` or ``keys``) and the limit.
    """
    for values, what, limit in ((run_ids, "run_ids", MAX_HISTORY_RUNS),
                                (keys, "keys", MAX_HISTORY_KEYS)):  # fmt: skip
        if isinstance(values, str):
            raise InvalidInput(f"{what} must be a list of names, not one string")
        count = len(dict.fromkeys(values))
        if not 1 <= count <= limit:
            raise InvalidInput(f"{what} must name 1 to {limit} distinct values; got {count}")
    for run_id in run_ids:
        validate_name(run_id, "run id")
    for key in keys:
        validate_name(key, "metric key")


def split_batch(
    metrics: Sequence[Metric] = (),
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[tuple[Sequence[Metric], dict[str, str], dict[str, str]]]:
    """Cut a batch of any size into ``(metrics, params, tags)`` chunks within the limits.

    Order is kept within each kind: a repeated ``(key, step)`` point lands after the earlier
    one, so the last one given still wins.
    """
    param_items = list((params or {}).items())
    tag_items = list((tags or {}).items())
    metric_start = param_start = tag_start = 0
    while (
        metric_start < len(metrics) or param_start < len(param_items) or tag_start < len(tag_items)
    ):
        chunk_params = param_items[param_start : param_start + MAX_PARAMS_PER_BATCH]
        chunk_tags = tag_items[tag_start : tag_start + MAX_TAGS_PER_BATCH]
        room = MAX_ENTITIES_PER_BATCH - len(chunk_params) - len(chunk_tags)
        chunk_metrics = metrics[metric_start : metric_start + min(room, MAX_METRICS_PER_BATCH)]
        yield chunk_metrics, dict(chunk_params), dict(chunk_tags)
        metric_start += len(chunk_metrics)
        param_start += len(chunk_params)
        tag_start += len(chunk_tags)
