"""Upgrading tables written by an earlier release: run summaries (``tracking init``).

Runs written before summaries existed have no ``s_state``; they keep working (they are read
from their partitions, and this release's writes to them go to the partition only, conditioned
on ``s_state`` being absent or ``overflow``). ``upgrade_run_summaries`` gives each one its
summary, one run at a time:

1. read the partition (consistent);
2. write the summary with the condition that ``s_state`` is still absent: from then on every
   write of this release updates the summary in the same request, and none goes to the
   partition only (their condition fails and they retry on the summary);
3. read the partition again and compare: a write that landed between 1 and 2 is in the
   partition but maybe not in the summary, so the summary is rewritten from the partition
   (conditioned on the ``s_bytes`` it had) until both agree.

Each run is upgraded or not, so an upgrade stopped half way (a crash, a throttle) is resumed by
running it again; a run already upgraded is skipped. The upgrade Scans the tracking table for
run items: an admin operation of ``tracking init``, never on a request path. Writers of the
earlier release must be stopped first: their writes carry no condition on ``s_state``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pynamodb.expressions.update import Action

from tracking.entities import RunRecord
from tracking.stores.dynamodb.base import UPDATE_ATTEMPTS, DynamoDBBase
from tracking.stores.dynamodb.errors import _calling, conditional_write
from tracking.stores.dynamodb.keys import _RUN_SK, _run_pk
from tracking.stores.dynamodb.summary import (
    OK,
    OVERFLOW,
    SUMMARY_BUDGET_BYTES,
    artifact_entry,
    dataset_entry,
    entries_bytes,
    metric_entry,
    run_from_summary,
    split_partition,
)


def summary_maps(run: RunRecord) -> dict[str, dict[str, str]]:
    """The summary attributes that describe ``run`` completely."""
    return {
        "s_params": dict(run.params),
        "s_tags": dict(run.tags),
        "s_metrics": {key: metric_entry(metric) for key, metric in run.metrics.items()},
        "s_datasets": {name: dataset_entry(d) for name, d in run.datasets.items()},
        "s_artifacts": {name: artifact_entry(a) for name, a in run.artifacts.items()},
    }


class DynamoDBUpgrade(DynamoDBBase):
    """``tracking init``'s upgrades of tables written by earlier releases."""

    def _legacy_run_ids(self) -> Iterator[str]:
        model = self._models.TrackingItem
        with _calling("upgrade run summaries"):
            for item in model.scan(
                (model.sk == _RUN_SK) & model.s_state.does_not_exist(),
                attributes_to_get=["run_id"],
            ):
                yield str(item.run_id)

    def upgrade_run_summaries(self) -> int:
        """Give every run written before summaries its summary; returns how many were upgraded.

        Idempotent and resumable (see the module docstring).

        Raises:
            StoreUnavailable: DynamoDB failed; running it again resumes.
        """
        upgraded = 0
        for run_id in self._legacy_run_ids():
            if self._upgrade_run(run_id):
                upgraded += 1
        return upgraded

    def _partition_run(self, run_id: str) -> tuple[Any, RunRecord] | None:
        head, rest = split_partition(self._query_partition(run_id))
        if head is None:
            return None
        return head, run_from_summary(head, rest)

    def _upgrade_run(self, run_id: str) -> bool:
        model = self._models.TrackingItem
        found = self._partition_run(run_id)
        if found is None or found[0].s_state is not None:
            return False
        actions, fits = self._summary_actions(found[1])
        with conditional_write("upgrade run summaries") as claimed:
            model(_run_pk(run_id), _RUN_SK).update(
                actions=actions, condition=model.pk.exists() & model.s_state.does_not_exist()
            )
        if claimed.failed or not fits:
            # Upgraded meanwhile by another `tracking init`; or an overflow run, which readers
            # already take from its partition.
            return not claimed.failed
        for _ in range(UPDATE_ATTEMPTS):
            again = self._partition_run(run_id)
            if again is None:
                return True
            head, run = again
            if run_from_summary(head) == run:
                return True
            # A partition-only write landed before the summary did: take the partition's view.
            actions, _ = self._summary_actions(run)
            with conditional_write("upgrade run summaries"):
                model(_run_pk(run_id), _RUN_SK).update(
                    actions=actions, condition=model.s_bytes == int(head.s_bytes or 0)
                )
        return True

    def _summary_actions(self, run: RunRecord) -> tuple[list[Action], bool]:
        """The update that makes the run item's summary describe ``run``; and whether it fits."""
        model = self._models.TrackingItem
        maps = summary_maps(run)
        size = sum(entries_bytes(values) for values in maps.values())
        fits = size <= SUMMARY_BUDGET_BYTES
        actions: list[Action] = [
            model.s_state.set(OK if fits else OVERFLOW),
            model.s_bytes.set(size if fits else 0),
        ]
        for attribute, values in maps.items():
            actions.append(getattr(model, attribute).set(values if fits else {}))
        return actions, fits
