"""Where the SDK stores things: the only place the SDK reads its environment."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tracking.events.webhooks import Webhook, parse_webhooks

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


class EventsConfig(BaseSettings):
    """Webhook delivery of registry events (``tracking events deliver``, the API's dispatcher).

    ``EVENT_WEBHOOKS`` is a JSON list of ``{"name", "url", "secret" | "secret_env", "events"}``
    (see ``tracking.events.webhooks``). A failed delivery is retried after
    ``EVENT_BACKOFF_SECONDS * 2**(attempt-1)`` (capped at ``EVENT_BACKOFF_MAX_SECONDS``) and the
    event is dead after ``EVENT_MAX_ATTEMPTS`` attempts. ``EVENT_WEBHOOK_ALLOW_HTTP_LOOPBACK``
    lets http reach 127.0.0.1 / ::1 (local receivers and tests); never set it in production.
    """

    # hide_input_in_errors: EVENT_WEBHOOKS may hold secrets.
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    webhooks: Annotated[tuple[Webhook, ...], NoDecode] = Field(
        default=(), validation_alias="EVENT_WEBHOOKS"
    )
    allow_http_loopback: bool = Field(
        default=False, validation_alias="EVENT_WEBHOOK_ALLOW_HTTP_LOOPBACK"
    )
    max_attempts: int = Field(default=8, ge=1, le=100, validation_alias="EVENT_MAX_ATTEMPTS")
    backoff_seconds: float = Field(
        default=30.0, ge=0.0, le=86_400.0, validation_alias="EVENT_BACKOFF_SECONDS"
    )
    backoff_max_seconds: float = Field(
        default=6 * 3600.0, ge=0.0, le=7 * 86_400.0, validation_alias="EVENT_BACKOFF_MAX_SECONDS"
    )
    timeout_seconds: float = Field(
        default=5.0, gt=0.0, le=60.0, validation_alias="EVENT_WEBHOOK_TIMEOUT_SECONDS"
    )

    @field_validator("webhooks", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_webhooks(value)
