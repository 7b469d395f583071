"""``ExperimentLogger`` (the SDK's entry point) and ``Run`` (an active run, a context manager).

Metric points are buffered in the ``Run`` and written in batches: when the buffer fills, on
``flush()``, and when the run ends (an exception exit included). A batch that fails stays in the
buffer and is re-sent by the next flush; points are keyed by ``(run, key, step)``, so a re-sent
batch never duplicates. ``log_metric`` acknowledges into the buffer; ``flush()`` returning means
the points are stored.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from tracking.artifacts.base import ArtifactStore, DatasetDigest
from tracking.backends import build_stores
from tracking.clock import now_ms
from tracking.config import TrackingConfig, load_config
from tracking.datasets import describe_dataset
from tracking.downsample import check_max_points
from tracking.entities import Artifact, Dataset, Experiment, Metric, Page, RunRecord, RunStatus
from tracking.errors import Conflict, InvalidInput, TrackingError
from tracking.run_query import parse_query
from tracking.stores._tokens import check_page_size
from tracking.stores.ports.metadata import (
    DEFAULT_PAGE_SIZE,
    MAX_HISTORY_KEYS,
    MAX_METRICS_PER_BATCH,
    MAX_PAGE_SIZE,
    MAX_PARAMS_PER_BATCH,
    MetadataStore,
    check_history_request,
    split_batch,
)
from tracking.validation import (
    validate_metric_value,
    validate_name,
    validate_params,
    validate_step,
    validate_tags,
    validate_timestamp,
)

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 500
MAX_SEARCH_RESULTS = 1000


def _artifact_file(name: str, path: str | os.PathLike[str]) -> Path:
    source = Path(path)
    if not source.is_file():
        raise InvalidInput(f"artifact {name!r}: file {os.fspath(path)!r} does not exist")
    if not os.access(source, os.R_OK):
        raise InvalidInput(f"artifact {name!r}: file {os.fspath(path)!r} is not readable")
    validate_name(source.name, "artifact file name")
    return source


def _flush_remaining(
    metadata: MetadataStore, run_id: str, buffer: dict[tuple[str, int], Metric]
) -> None:
    points = list(buffer.values())
    try:
        for start in range(0, len(points), MAX_METRICS_PER_BATCH):
            metadata.log_batch(run_id, metrics=points[start : start + MAX_METRICS_PER_BATCH])
        buffer.clear()
    except Exception:  # at collection or exit nobody can handle it: log, never raise
        log.exception("could not flush %d buffered metric points of run %s", len(points), run_id)


class Run:
    """An active run. Use it as a context manager, or call ``end()``.

    Thread-safe: several threads may log to one run.
    """

    def __init__(
        self,
        *,
        record: RunRecord,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        self._record = record
        self._metadata = metadata
        self._artifacts = artifacts
        self._buffer: dict[tuple[str, int], Metric] = {}
        self._buffer_size = max(1, min(buffer_size, MAX_METRICS_PER_BATCH))
        self._next_step: dict[str, int] = {}
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._ended = False
        # Flush what is buffered if the interpreter exits without ending the run
        # (weakref.finalize runs its callback at exit).
        # Flush what is buffered if the run is dropped, or the interpreter exits, without
        # ``end()``. The callback must not hold the run (it would never be collected), so it
        # gets the buffer and the store; by then no other thread can be using the buffer.
        self._finalizer = weakref.finalize(
            self, _flush_remaining, metadata, record.run_id, self._buffer
        )

    # -- identity ----------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._record.run_id

    @property
    def experiment_name(self) -> str:
        return self._record.experiment_name

    @property
    def info(self) -> RunRecord:
        """The run as stored now (flushes buffered metrics first)."""
        self.flush()
        return self._metadata.get_run(self.run_id)

    # -- params and tags ---------------------------------------------------------------------

    def log_param(self, key: str, value: object) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log params (write-once), any number of them.

        Up to ``MAX_PARAMS_PER_BATCH`` (100) params are one request to the store. More are
        checked against the stored params first, then sent in requests of 100 (as MLflow's
        client does); a store failure part-way may leave earlier requests written, and calling
        again with the same params is safe.

        Raises:
            InvalidInput: a key breaks the name rule or a value is over 6,000 characters
                (nothing is written).
            Conflict: a param already has a different value (nothing is written).
        """
        checked = validate_params(params)
        if len(checked) > MAX_PARAMS_PER_BATCH:
            stored = self._metadata.get_run(self.run_id).params
            changed = sorted(
                key for key, value in checked.items() if stored.get(key, value) != value
            )
            if changed:
                names = ", ".join(repr(key) for key in changed)
                raise Conflict(
                    f"run {self.run_id!r} already has a different value for param {names}; "
                    "params are write-once"
                )
            # Already stored with the same value: writing them again would be a no-op.
            checked = {key: value for key, value in checked.items() if key not in stored}
        for _, chunk, _ in split_batch(params=checked):
            self._metadata.log_batch(self.run_id, params=chunk)

    def set_tag(self, key: str, value: object) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Set tags (a tag may be overwritten), any number of them, in requests of 100.

        Raises:
            InvalidInput: a key breaks the name rule or a value is over 6,000 characters
                (nothing is written).
        """
        for _, _, chunk in split_batch(tags=validate_tags(tags)):
            self._metadata.log_batch(self.run_id, tags=chunk)

    # -- metrics -----------------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Buffer one metric point.

        ``step`` defaults to one more than the last step logged for ``key`` by this run object
        (0 for the first). The point with the same key and step replaces an earlier one.

        Raises:
            InvalidInput: bad key, a non-finite value, a negative step or timestamp.
        """
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Buffer several metric points at one step (validated all first, then buffered)."""
        stamp = now_ms() if timestamp is None else validate_timestamp("timestamp", timestamp)
        checked = [
            (validate_name(key, "metric key"), validate_metric_value(key, value))
            for key, value in metrics.items()
        ]
        if step is not None:
            validate_step("step", step)
        with self._lock:
            for key, value in checked:
                point_step = self._next_step.get(key, 0) if step is None else step
                self._next_step[key] = max(self._next_step.get(key, 0), point_step + 1)
                self._buffer[(key, point_step)] = Metric(
                    key=key, value=value, step=point_step, timestamp=stamp
                )
            full = len(self._buffer) >= self._buffer_size
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every buffered metric point.

        Raises:
            TrackingError: the store failed; the points stay buffered and the next flush
                re-sends them.
        """
        with self._flush_lock:
            while True:
                with self._lock:
                    if not self._buffer:
                        return
                    keys = list(self._buffer)[:MAX_METRICS_PER_BATCH]
                    batch = [self._buffer[key] for key in keys]
                self._metadata.log_batch(self.run_id, metrics=batch)
                with self._lock:
                    for key, sent in zip(keys, batch, strict=True):
                        # A point re-logged while the batch was in flight stays buffered.
                        if self._buffer.get(key) is sent:
                            del self._buffer[key]

    # -- artifacts and datasets --------------------------------------------------------------

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> Artifact:
        """Upload a file as an artifact of this run, recording its SHA-256 and size.

        Raises:
            InvalidInput: the file is missing, or the name breaks the name rule.
            AlreadyExists: the run already has an artifact with this name.
        """
        source = Path(path)
        artifact_name = validate_name(source.name if name is None else name, "artifact name")
        source = _artifact_file(artifact_name, path)
        stored = self._artifacts.upload(self.run_id, artifact_name, source)
        artifact = Artifact(
            name=artifact_name,
            uri=stored.uri,
            sha256=stored.sha256,
            size=stored.size,
            created_at=now_ms(),
        )
        try:
            self._metadata.log_artifact(self.run_id, artifact)
        except BaseException:
            # Without its record the upload would be an orphan nobody can find or verify.
            self._artifacts.delete(stored.uri)
            raise
        return artifact

    def log_dataset(self, name: str, path_or_uri: str | os.PathLike[str]) -> Dataset:
        """Record the version (content digest) of a dataset used by this run.

        Raises:
            InvalidInput: bad name, or the path does not exist.
            NotFound: the ``s3://`` object does not exist.
        """
        validate_name(name, "dataset name")
        return self._record_dataset(name, describe_dataset(path_or_uri))

    def _record_dataset(self, name: str, described: DatasetDigest) -> Dataset:
        dataset = Dataset(
            name=name,
            uri=described.uri,
            digest=described.digest,
            digest_algorithm=described.digest_algorithm,
            size=described.size,
            version_id=described.version_id,
            logged_at=now_ms(),
        )
        self._metadata.log_dataset(self.run_id, dataset)
        return dataset

    # -- lifecycle ---------------------------------------------------------------------------

    def end(self, status: RunStatus = RunStatus.FINISHED) -> None:
        """Flush buffered metrics and set the final status and end time."""
        if self._ended:
            return
        try:
            self.flush()
        except BaseException:
            self._metadata.set_run_status(self.run_id, RunStatus.FAILED, now_ms())
            self._ended = True
            raise
        self._metadata.set_run_status(self.run_id, status, now_ms())
        self._ended = True
        self._finalizer.detach()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
            return
        status = RunStatus.KILLED if issubclass(exc_type, KeyboardInterrupt) else RunStatus.FAILED
        try:
            self.end(status)
        except TrackingError:
            # The caller's exception matters more; the buffered points stay for a later flush.
            log.exception("could not end run %s cleanly", self.run_id)

    def __repr__(self) -> str:
        return f"Run(run_id={self.run_id!r}, experiment={self.experiment_name!r})"


class ExperimentLogger:
    """Log experiments and query them.

    Args:
        tracking_uri: ``sqlite:///<path>`` or ``dynamodb://<table-prefix>``; default
            ``TRACKING_URI`` or the embedded SQLite file.
        artifact_uri: ``file://<path>`` or ``s3://<bucket>/<prefix>``; default ``ARTIFACT_URI``
            or the embedded folder.
        metadata_store, artifact_store: ready-made stores (tests, custom backends).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_uri: str | None = None,
        *,
        metadata_store: MetadataStore | None = None,
        artifact_store: ArtifactStore | None = None,
        config: TrackingConfig | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        self.config = config or load_config(tracking_uri, artifact_uri)
        if metadata_store is None or artifact_store is None:
            built_metadata, built_artifacts = build_stores(self.config)
            metadata_store = metadata_store or built_metadata
            artifact_store = artifact_store or built_artifacts
        self.metadata = metadata_store
        self.artifacts = artifact_store
        self._buffer_size = buffer_size

    # -- writing -----------------------------------------------------------------------------

    def start_run(
        self,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, object] | None = None,
        parent_run_id: str | None = None,
    ) -> Run:
        """Start a ``RUNNING`` run in ``experiment`` (created when missing).

        Raises:
            InvalidInput: bad experiment name, run name or tags.
            NotFound: ``parent_run_id`` names no run.
        """
        validate_name(experiment, "experiment name")
        if run_name is not None:
            validate_name(run_name, "run name")
        checked_tags = validate_tags(tags or {})
        if parent_run_id is not None:
            self.metadata.get_run(parent_run_id)
        record = self.metadata.create_run(
            experiment=self.metadata.get_or_create_experiment(experiment),
            run_id=uuid.uuid4().hex,
            run_name=run_name,
            tags=checked_tags,
            parent_run_id=parent_run_id,
            start_time=now_ms(),
        )
        return Run(
            record=record,
            metadata=self.metadata,
            artifacts=self.artifacts,
            buffer_size=self._buffer_size,
        )

    def log_experiment(
        self,
        name: str,
        params: Mapping[str, object] | None = None,
        metrics: Mapping[str, float] | None = None,
        artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
        *,
        tags: Mapping[str, object] | None = None,
        datasets: Mapping[str, str | os.PathLike[str]] | None = None,
        run_name: str | None = None,
    ) -> RunRecord:
        """Log one finished run in one call and return it as stored.

        Every input is checked before anything is written: names, param lengths, finite metric
        values and that each artifact file exists.

        Raises:
            InvalidInput: any input breaks a rule (nothing is written).
        """
        validate_name(name, "experiment name")
        if run_name is not None:
            validate_name(run_name, "run name")
        checked_params = validate_params(params or {})
        checked_tags = validate_tags(tags or {})
        checked_metrics = {
            validate_name(key, "metric key"): validate_metric_value(key, value)
            for key, value in (metrics or {}).items()
        }
        files = {
            validate_name(key, "artifact name"): _artifact_file(key, path)
            for key, path in (artifacts or {}).items()
        }
        described = {
            validate_name(key, "dataset name"): describe_dataset(path)
            for key, path in (datasets or {}).items()
        }
        with self.start_run(name, run_name=run_name, tags=checked_tags) as run:
            if checked_params:
                run.log_params(checked_params)
            if checked_metrics:
                run.log_metrics(checked_metrics, step=0)
            for dataset_name, digest in described.items():
                run._record_dataset(dataset_name, digest)
            for artifact_name, source in files.items():
                run.log_artifact(source, name=artifact_name)
        return self.metadata.get_run(run.run_id)

    # -- reading -----------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        """Return a run. Raises ``NotFound`` when there is none."""
        return self.metadata.get_run(run_id)

    def get_experiment(self, name: str) -> Experiment:
        return self.metadata.get_experiment(name)

    def list_experiments(
        self, max_results: int = DEFAULT_PAGE_SIZE, page_token: str | None = None
    ) -> Page[Experiment]:
        """One page of experiments ordered by name; pass ``next_token`` back for the next."""
        return self.metadata.list_experiments(max_results, page_token)

    def get_metric_history(
        self, run_id: str, key: str, max_points: int | None = None
    ) -> list[Metric]:
        """Every point of a metric in step order, or at most ``max_points`` of them for a chart.

        Downsampling keeps the first and last point and each step-range bucket's minimum and
        maximum, so spikes survive (``tracking.downsample``).

        Raises:
            InvalidInput: ``max_points`` is not an integer of at least 2 (nothing is read).
            NotFound: no such run.
        """
        if max_points is None:
            return list(self.metadata.iter_metric_history(run_id, key))
        check_max_points(max_points)
        return self.metadata.get_downsampled_history(run_id, key, max_points)

    def get_metric_history_page(
        self,
        run_id: str,
        key: str,
        max_results: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[Metric]:
        """One page of a metric's points in step order; pass ``next_token`` back for the next.

        Raises:
            InvalidInput: bad ``max_results`` or ``page_token``.
            NotFound: no such run.
        """
        return self.metadata.get_metric_history(run_id, key, max_results, page_token)

    def get_metric_histories(
        self,
        run_ids: Sequence[str],
        keys: Sequence[str] | None = None,
        max_points: int | None = None,
    ) -> dict[str, dict[str, list[Metric]]]:
        """Histories of several runs at once (a compare view): ``{run_id: {key: points}}``.

        Args:
            run_ids: 1 to ``MAX_HISTORY_RUNS`` (10) runs; repeats are read once.
            keys: 1 to ``MAX_HISTORY_KEYS`` (100) metric keys, read for every run (a run
                that never logged one gets an empty list). ``None``: every key any of the
                runs has a latest value for (their union, so the runs line up), at most 100.
            max_points: downsample each history as ``get_metric_history`` does.

        Raises:
            InvalidInput: too many or no runs or keys, a bad name, or a bad ``max_points``
                (checked before any history is read).
            NotFound: one of the runs does not exist.
        """
        if max_points is not None:
            check_max_points(max_points)
        if keys is None:
            check_history_request(run_ids, ["any"])  # the runs' count, before reading them
            keys = sorted({key for run_id in run_ids for key in self.get_run(run_id).metrics})
            if len(keys) > MAX_HISTORY_KEYS:
                raise InvalidInput(
                    f"keys: these runs have {len(keys)} metric keys; at most "
                    f"{MAX_HISTORY_KEYS} can be read at once (pass keys)"
                )
            if not keys:
                return {run_id: {} for run_id in dict.fromkeys(run_ids)}
        return self.metadata.get_metric_histories(run_ids, keys, max_points)

    def search_runs(
        self,
        experiment: str,
        filter: str | None = None,  # the public name users write
        order_by: Sequence[str] | None = None,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[RunRecord]:
        """Runs of ``experiment`` matching ``filter``, sorted by ``order_by``.

        Example: ``filter="metrics.auc > 0.8 and (params.max_depth = '5' or tags.team = 'ds')"``,
        ``order_by=["metrics.auc DESC"]``. See ``tracking.search`` for the grammar.

        Raises:
            InvalidInput: a malformed filter, order_by or page token.
            NotFound: no such experiment.
        """
        query = parse_query(filter, order_by)
        limit = check_page_size(max_results, MAX_SEARCH_RESULTS)
        return self.metadata.search_runs(experiment, query, limit, page_token)

    def close(self) -> None:
        self.metadata.close()
