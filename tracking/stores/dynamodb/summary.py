"""Run summaries: a run's whole state projected onto its run item, so ``gsi1`` lists it.

The run item (``RUN#{run_id}`` / ``RUN``) carries, next to status and times, maps of the run's
params, tags, latest metrics, datasets and artifact records. ``gsi1`` projects every attribute,
so one Query on the experiment's runs returns complete runs: listing and searching make no
request per run. Each write changes the summary in the same request or transaction as the
items it mirrors (``PARAM#``, ``TAG#``, ``DATASET#``, ``ARTIFACT#``: still written, since their
conditions make params write-once and artifacts immutable).

The latest value of a metric lives only in the summary map while the run is ``ok``: one
conditional UpdateItem keeps the highest ``(step, timestamp)``. Entries are strings that sort
like that pair (``{step:020d}|{timestamp:020d}|{repr(value)}``), so the condition is one string
comparison.

A summary is bounded (``SUMMARY_BUDGET_BYTES``, counted in ``s_bytes`` by DynamoDB's size rules
on every write that adds to it; a rewritten tag or dataset counts again, which only ever moves a
run to overflow early). A write that would pass the budget marks the run ``overflow`` instead:
such a run is read from its partition (one Query), its new latest metrics go to ``METRIC#``
items, and readers take the newer of both. Runs written before summaries existed (no
``s_state``) are read the same way until ``tracking init`` upgrades them (``upgrade.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tracking.entities import Artifact, Dataset, Experiment, Metric, RunRecord, RunStatus
from tracking.stores.dynamodb.keys import _ARTIFACT, _DATASET, _METRIC, _PARAM, _RUN_SK, _TAG

#: At most this many bytes of params, tags, latest metrics, datasets and artifact records on a
#: run item (DynamoDB allows 400 KB). Every write to the run item is billed by its whole size
#: (1 WCU per KB), so the bound also caps what one latest-metric update costs: 64 WCU at worst,
#: 1-2 for a typical run (5 params, 5 metrics, 2 tags: about 600 bytes). 64 KiB holds ~1,000
#: metric keys with their values.
SUMMARY_BUDGET_BYTES = 64 * 1024

OK = "ok"
OVERFLOW = "overflow"

_STEP_DIGITS = 20  # 2**63 - 1 has 19 digits


def metric_entry(metric: Metric) -> str:
    """The summary's string for a latest metric: sorts by (step, timestamp)."""
    return f"{metric.step:0{_STEP_DIGITS}d}|{metric.timestamp:0{_STEP_DIGITS}d}|{metric.value!r}"


def newer_bound(metric: Metric) -> str:
    """Every entry whose (step, timestamp) is at most the metric's sorts below this string.

    ``~`` sorts after every character of a float's repr, so an equal (step, timestamp) stays
    below the bound whatever its value: a later point wins a full tie, as on every backend.
    """
    return f"{metric.step:0{_STEP_DIGITS}d}|{metric.timestamp:0{_STEP_DIGITS}d}|~"


def metric_from_entry(key: str, entry: str) -> Metric:
    step, timestamp, value = entry.split("|", 2)
    return Metric(key=key, value=float(value), step=int(step), timestamp=int(timestamp))


def dataset_entry(dataset: Dataset) -> str:
    return json.dumps(dataset.model_dump(exclude={"name"}), separators=(",", ":"))


def artifact_entry(artifact: Artifact) -> str:
    return json.dumps(artifact.model_dump(exclude={"name"}), separators=(",", ":"))


def entry_bytes(key: str, value: str) -> int:
    """What one map entry adds to the item by DynamoDB's rules: name, value and a byte."""
    return 1 + len(key.encode()) + len(value.encode())


def entries_bytes(entries: Mapping[str, str]) -> int:
    return sum(entry_bytes(key, value) for key, value in entries.items())


def _map(item: Any, name: str) -> dict[str, str]:
    value = getattr(item, name)
    return dict(value.as_dict()) if value is not None else {}


def is_ok(item: Any) -> bool:
    """Whether the run item's summary is the run's whole state."""
    return bool(item.s_state == OK)


def newest(left: Metric | None, right: Metric) -> Metric:
    if left is None or (right.step, right.timestamp) >= (left.step, left.timestamp):
        return right
    return left


def run_from_summary(item: Any, partition: Iterable[Any] = ()) -> RunRecord:
    """The run an item describes; for a run that is not ``ok``, its partition's items too.

    Partition items are the record for params, tags, datasets and artifacts; a latest metric
    may be in either place, and the newer one wins.
    """
    params = _map(item, "s_params")
    tags = _map(item, "s_tags")
    metrics = {key: metric_from_entry(key, entry) for key, entry in _map(item, "s_metrics").items()}
    datasets = {
        name: Dataset(name=name, **json.loads(entry))
        for name, entry in _map(item, "s_datasets").items()
    }
    artifacts = {
        name: Artifact(name=name, **json.loads(entry))
        for name, entry in _map(item, "s_artifacts").items()
    }
    for part in partition:
        sk: str = part.sk
        if sk.startswith(_PARAM):
            params[sk[len(_PARAM) :]] = part.value
        elif sk.startswith(_TAG):
            tags[sk[len(_TAG) :]] = part.value
        elif sk.startswith(_METRIC):
            key = sk[len(_METRIC) :]
            point = Metric(
                key=key, value=float(part.value), step=int(part.step), timestamp=int(part.timestamp)
            )
            metrics[key] = newest(metrics.get(key), point)
        elif sk.startswith(_DATASET):
            name = sk[len(_DATASET) :]
            datasets[name] = Dataset(
                name=name,
                uri=part.uri,
                digest=part.digest,
                digest_algorithm=part.digest_algorithm,
                size=None if part.size is None else int(part.size),
                version_id=part.version_id,
                logged_at=int(part.logged_at),
            )
        elif sk.startswith(_ARTIFACT):
            name = sk[len(_ARTIFACT) :]
            artifacts[name] = Artifact(
                name=name,
                uri=part.uri,
                sha256=part.sha256,
                size=int(part.size),
                created_at=int(part.created_at),
            )
    return RunRecord(
        run_id=item.run_id,
        experiment_id=item.experiment_id,
        experiment_name=item.experiment_name,
        run_name=item.run_name,
        status=RunStatus(item.status),
        start_time=int(item.start_time),
        end_time=None if item.end_time is None else int(item.end_time),
        parent_run_id=item.parent_run_id,
        params=params,
        metrics=metrics,
        tags=tags,
        datasets=datasets,
        artifacts=artifacts,
    )


def split_partition(items: Iterable[Any]) -> tuple[Any, list[Any]]:
    """The run item and the other items of a run's partition (``None`` when it is missing)."""
    head: Any = None
    rest: list[Any] = []
    for item in items:
        if item.sk == _RUN_SK:
            head = item
        else:
            rest.append(item)
    return head, rest


def _experiment_from(item: Any) -> Experiment:
    tags = item.tags.as_dict() if item.tags is not None else {}
    return Experiment(
        experiment_id=item.experiment_id,
        name=item.name,
        created_at=int(item.created_at),
        tags=dict(tags),
    )
