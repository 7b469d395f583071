"""The parts of a training entry point every model shares: the registry beside the logger,
promotion after registration, the ``--promote`` option and the CLI's error exit."""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from tracking import ExperimentLogger, ModelRegistry, ModelVersion, TrackingError


class Stage(enum.StrEnum):
    staging = "staging"
    production = "production"


PromoteOption = Annotated[Stage | None, typer.Option(help="Promote the new version.")]


def registry_for(logger: ExperimentLogger, registry: ModelRegistry | None) -> ModelRegistry:
    """``registry``, or one on the logger's stores so the version lands beside its run."""
    return registry or ModelRegistry(
        store=logger.metadata,  # type: ignore[arg-type]  # the built stores serve both ports
        artifact_store=logger.artifacts,
    )


def promote_if(
    registry: ModelRegistry, version: ModelVersion, promote: str | None, reason: str
) -> ModelVersion:
    """``version`` moved to stage ``promote`` (unchanged when ``None``)."""
    if promote is None:
        return version
    return registry.promote(version.name, version.version, to=promote, reason=reason)


def stage_value(promote: Stage | None) -> str | None:
    return None if promote is None else promote.value


@contextmanager
def cli_errors(*plain: type[Exception]) -> Iterator[None]:
    """Turn a ``TrackingError`` (or one of ``plain``) into a one-line message and exit 1,
    so a CLI user sees the problem rather than a traceback."""
    try:
        yield
    except TrackingError as exc:
        sys.stderr.write(f"error ({exc.code}): {' '.join(exc.message.split())}\n")
        raise typer.Exit(1) from None
    except plain as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None
