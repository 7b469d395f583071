"""Downsampled metric histories for the charts, read in bulk and kept in a small cache.

The store downsamples each history to 1,000 points (SQLite from its per-16-steps summary, ~10 ms
for a 100,000-point metric; DynamoDB from the history's chunks, read whole). A chart only ever
needs the downsampled series, and a history only changes when its run logs to it, which moves
the run's latest value of that metric (its step and timestamp). So each series is cached under
``(run, key, latest step, latest timestamp, latest value)``: a finished run's charts are read
from the store once per process, a running run's are read again whenever it logs more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from tracking import ExperimentLogger
from tracking.entities import Metric, RunRecord

MAX_POINTS = 1000
#: Series kept (each at most 1,000 points: ~25 KB of floats and ints at most).
CACHE_SERIES = 2000

Series = list[list[float]]
_Key = tuple[str, str, int, int, float]


def _series(points: Sequence[Metric]) -> Series:
    return [[point.step for point in points], [point.value for point in points]]


class HistoryCache:
    """``{run_id: {key: [[steps], [values]]}}`` for charts, each series ≤ ``MAX_POINTS``."""

    def __init__(self, size: int = CACHE_SERIES) -> None:
        self._size = size
        self._entries: OrderedDict[_Key, Series] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(run: RunRecord, key: str) -> _Key | None:
        latest = run.metrics.get(key)
        if latest is None:
            return None
        return (run.run_id, key, latest.step, latest.timestamp, latest.value)

    def _get(self, key: _Key) -> Series | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def _put(self, key: _Key, series: Series) -> None:
        with self._lock:
            self._entries[key] = series
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def read(
        self, logger: ExperimentLogger, runs: Sequence[RunRecord], keys: Sequence[str]
    ) -> dict[str, dict[str, Series]]:
        """The charts' data; what the cache lacks is read in one bulk request.

        Raises:
            InvalidInput, NotFound: as ``ExperimentLogger.get_metric_histories``.
        """
        answer: dict[str, dict[str, Series]] = {run.run_id: {} for run in runs}
        missing_runs: dict[str, RunRecord] = {}
        missing_keys: dict[str, None] = {}
        for run in runs:
            for key in keys:
                cache_key = self._key(run, key)
                if cache_key is None:
                    answer[run.run_id][key] = [[], []]  # never logged by this run
                    continue
                found = self._get(cache_key)
                if found is None:
                    missing_runs[run.run_id] = run
                    missing_keys[key] = None
                else:
                    answer[run.run_id][key] = found
        if missing_runs:
            read = logger.get_metric_histories(
                list(missing_runs), list(missing_keys), max_points=MAX_POINTS
            )
            for run_id, by_key in read.items():
                for key, points in by_key.items():
                    series = _series(points)
                    answer[run_id][key] = series
                    cache_key = self._key(missing_runs[run_id], key)
                    if cache_key is not None:
                        self._put(cache_key, series)
        return answer
