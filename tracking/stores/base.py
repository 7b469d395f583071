"""The ``MetadataStore`` port: what every metadata backend (SQLite, DynamoDB) must do.

Backends implement the abstract core; the convenience methods at the bottom delegate to it
(``log_metric`` -> ``log_batch``), as in MLflow's abstract store. The contract suite in
``tests/contract`` runs the same tests against every backend.

Shared rules:
- Inputs reaching a store are already validated by the SDK, but a store never trusts them for
  anything that touches a path or key: ids are generated here or by the SDK.
- A method that raises leaves the store as it was (one transaction, or conditions that fail
  before anything is applied).
- Listings return ``Page`` objects whose ``next_token`` is opaque and ``None`` on the last page.
- Backend failures (throttling after retries, timeouts, I/O errors) raise ``StoreUnavailable``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence

from tracking.entities import (
    Artifact,
    Dataset,
    Experiment,
    Metric,
    Page,
    Run,
    RunStatus,
    iter_pages,
)
from tracking.errors import AlreadyExists

#: Metric points written by one ``log_batch`` call at most; the SDK's buffer flushes at this size.
MAX_METRICS_PER_BATCH = 1000
#: Page size used when a caller does not choose one.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class MetadataStore(abc.ABC):
    """Experiments, runs, params, metrics with step history, tags, datasets, artifact records."""

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    def initialize(self) -> None:
        """Create the backing tables or schema when missing. Idempotent.

        Called by ``tracking init`` (and by the embedded default, whose file is local); never
        called implicitly on a request path of a remote backend.
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
    ) -> Run:
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
    def get_run(self, run_id: str) -> Run:
        """Return the run with its params, latest metrics, tags, datasets and artifacts.

        Raises:
            NotFound: no such run.
        """

    @abc.abstractmethod
    def list_runs(
        self,
        experiment_name: str,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[Run]:
        """Return complete runs of an experiment, newest start time first (ties: run id).

        Raises:
            NotFound: no such experiment.
            InvalidInput: bad ``page_token``.
        """

    @abc.abstractmethod
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

        Raises:
            NotFound: no such run (nothing written).
            Conflict: a param already has a different value (nothing written).
        """

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

    def iter_runs(self, experiment_name: str) -> Iterator[Run]:
        """Yield every run of an experiment, page by page."""
        return iter_pages(lambda token: self.list_runs(experiment_name, MAX_PAGE_SIZE, token))

    def iter_metric_history(self, run_id: str, key: str) -> Iterator[Metric]:
        """Yield every point of a metric in step order, page by page."""
        return iter_pages(lambda token: self.get_metric_history(run_id, key, MAX_PAGE_SIZE, token))
