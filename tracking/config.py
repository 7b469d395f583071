"""Where the SDK stores things: the only place the SDK reads its environment."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_URI = "sqlite:///.tracking/tracking.db"
DEFAULT_ARTIFACT_URI = "file://.tracking/artifacts"


class TrackingConfig(BaseSettings):
    """Store locations, from arguments or from ``TRACKING_URI`` / ``ARTIFACT_URI``.

    ``TRACKING_URI`` is ``sqlite:///<path>`` (relative to the working directory; an absolute path
    has four slashes) or ``dynamodb://<table-prefix>``. ``ARTIFACT_URI`` is ``file://<path>`` or
    ``s3://<bucket>/<prefix>``. AWS region, credentials and ``AWS_ENDPOINT_URL`` are read by
    botocore itself, so moto's server or DynamoDB Local can stand in for AWS.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    tracking_uri: str = Field(default=DEFAULT_TRACKING_URI, validation_alias="TRACKING_URI")
    artifact_uri: str = Field(default=DEFAULT_ARTIFACT_URI, validation_alias="ARTIFACT_URI")
    actor: str | None = Field(default=None, validation_alias="TRACKING_ACTOR")


def load_config(
    tracking_uri: str | None = None,
    artifact_uri: str | None = None,
    actor: str | None = None,
) -> TrackingConfig:
    """Build the configuration: explicit arguments win over the environment."""
    overrides = {
        key: value
        for key, value in (
            ("TRACKING_URI", tracking_uri),
            ("ARTIFACT_URI", artifact_uri),
            ("TRACKING_ACTOR", actor),
        )
        if value is not None
    }
    return TrackingConfig(**overrides)  # type: ignore[arg-type]
