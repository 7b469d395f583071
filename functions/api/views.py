"""What the HTTP API shows of runs and model versions: everything but where bytes are stored.

Artifact and dataset URIs name the bucket, its prefix or a folder on a training machine, which a
caller holding a ``read`` key has no use for and an attacker would: the API identifies bytes by
name and SHA-256 instead. The SDK and the CLI (operators, with IAM) still see the URIs.
"""

from __future__ import annotations

from pydantic import Field

from tracking.entities import (
    ArtifactInfo,
    DatasetInfo,
    ModelVersion,
    ModelVersionInfo,
    RunInfo,
    RunRecord,
)

_RUN_LOCATIONS = {"datasets": {"__all__": {"uri"}}, "artifacts": {"__all__": {"uri"}}}


class RunView(RunInfo):
    """A run as the HTTP API shows it."""

    datasets: dict[str, DatasetInfo] = Field(default_factory=dict)
    artifacts: dict[str, ArtifactInfo] = Field(default_factory=dict)

    @classmethod
    def of(cls, run: RunRecord) -> RunView:
        return cls.model_validate(run.model_dump(exclude=_RUN_LOCATIONS))


def version_view(version: ModelVersion) -> ModelVersionInfo:
    """A model version as the HTTP API shows it."""
    return ModelVersionInfo.model_validate(version.model_dump(exclude={"artifact_uri"}))
