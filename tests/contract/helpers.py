"""Helpers shared by the contract tests: snapshots of everything a backend holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.contract.conftest import Backend


def artifact_objects(backend: Backend) -> list[str]:
    """Every object in the artifact store, read with the backend's own client."""
    uri = backend.config.artifact_uri
    if uri.startswith("file://"):
        root = Path(uri[len("file://") :])
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    import boto3

    bucket = uri[len("s3://") :].split("/", 1)[0]
    paginator = boto3.client("s3").get_paginator("list_objects_v2")
    return sorted(
        item["Key"]
        for page in paginator.paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    )


def snapshot(backend: Backend) -> dict[str, Any]:
    """Experiments, their complete runs, metric histories and artifact objects."""
    store = backend.metadata
    experiments = []
    token = None
    while True:
        page = store.list_experiments(100, token)
        experiments.extend(page.items)
        if page.next_token is None:
            break
        token = page.next_token
    runs = {exp.name: list(store.iter_runs(exp.name)) for exp in experiments}
    histories = {
        (run.run_id, key): list(store.iter_metric_history(run.run_id, key))
        for exp_runs in runs.values()
        for run in exp_runs
        for key in run.metrics
    }
    return {
        "experiments": experiments,
        "runs": runs,
        "histories": histories,
        "artifacts": artifact_objects(backend),
    }
