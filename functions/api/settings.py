"""The server's settings: read once, at the edge, from the environment (pydantic-settings)."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tracking.config import (
    DEFAULT_ARTIFACT_URI,
    DEFAULT_TRACKING_URI,
    EventsConfig,
    TrackingConfig,
)
from tracking.validation import NAME_PATTERN

SCOPES = ("predict", "read", "admin")


class ApiKeySpec(BaseModel):
    """One configured key: a name (recorded as the actor), its scopes and the key's SHA-256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
    scopes: tuple[str, ...]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be a non-empty subset of {SCOPES}")
        return scopes


class ApiSettings(BaseSettings):
    """Everything the server reads from its environment."""

    # hide_input_in_errors: a refused setting is named, never echoed (API_KEYS, EVENT_WEBHOOKS).
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    tracking_uri: str = Field(default=DEFAULT_TRACKING_URI, validation_alias="TRACKING_URI")
    artifact_uri: str = Field(default=DEFAULT_ARTIFACT_URI, validation_alias="ARTIFACT_URI")
    api_keys: Annotated[tuple[ApiKeySpec, ...], NoDecode] = Field(
        default=(), validation_alias="API_KEYS"
    )
    api_keys_secret_arn: str | None = Field(default=None, validation_alias="API_KEYS_SECRET_ARN")
    served_models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("churn",), validation_alias="SERVED_MODELS"
    )
    model_refresh_seconds: float = Field(
        default=30.0, ge=0.0, le=3600.0, validation_alias="MODEL_REFRESH_SECONDS"
    )
    model_cache_dir: Path | None = Field(default=None, validation_alias="MODEL_CACHE_DIR")
    allow_pickle_models: bool = Field(default=False, validation_alias="ALLOW_PICKLE_MODELS")
    max_batch_rows: int = Field(default=1000, ge=1, le=100_000, validation_alias="MAX_BATCH_ROWS")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, validation_alias="MAX_BODY_BYTES")
    max_batch_body_bytes: int = Field(
        default=6_000_000, ge=1024, validation_alias="MAX_BATCH_BODY_BYTES"
    )
    docs_enabled: bool = Field(default=True, validation_alias="DOCS_ENABLED")
    load_models_on_start: bool = Field(default=True, validation_alias="LOAD_MODELS_ON_START")
    # Webhook delivery of registry events (tracking.config.EventsConfig documents them); kept
    # as given here and checked by events_config(), so one parser serves the CLI and the API.
    event_webhooks: str = Field(default="", validation_alias="EVENT_WEBHOOKS", repr=False)
    event_webhook_allow_http_loopback: bool = Field(
        default=False, validation_alias="EVENT_WEBHOOK_ALLOW_HTTP_LOOPBACK"
    )
    event_max_attempts: int = Field(default=8, validation_alias="EVENT_MAX_ATTEMPTS")
    event_backoff_seconds: float = Field(default=30.0, validation_alias="EVENT_BACKOFF_SECONDS")
    event_backoff_max_seconds: float = Field(
        default=6 * 3600.0, validation_alias="EVENT_BACKOFF_MAX_SECONDS"
    )
    #: The API's delivery pass after a registry change runs with this per-request timeout and
    #: stops starting deliveries after EVENT_DELIVERY_BUDGET_SECONDS.
    event_webhook_timeout_seconds: float = Field(
        default=2.0, validation_alias="EVENT_WEBHOOK_TIMEOUT_SECONDS"
    )
    event_delivery_budget_seconds: float = Field(
        default=2.0, ge=0.0, le=20.0, validation_alias="EVENT_DELIVERY_BUDGET_SECONDS"
    )
    prediction_log_enabled: bool = Field(default=True, validation_alias="PREDICTION_LOG_ENABLED")
    prediction_log_sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, validation_alias="PREDICTION_LOG_SAMPLE_RATE"
    )
    #: Features are player data: logged only when asked for (drift on features needs them).
    prediction_log_features: bool = Field(default=False, validation_alias="PREDICTION_LOG_FEATURES")
    #: Ten batches (about 12 MB of churn lines), so a burst while the writer is busy is not dropped.
    prediction_log_buffer_size: int = Field(
        default=50_000, ge=1, le=1_000_000, validation_alias="PREDICTION_LOG_BUFFER_SIZE"
    )
    #: Each object costs a write (a PUT on S3) besides its records: at 5,000 records the writer
    #: took a third less CPU per record than at 1,000 under a saturating 100-row load.
    prediction_log_batch_size: int = Field(
        default=5000, ge=1, le=100_000, validation_alias="PREDICTION_LOG_BATCH_SIZE"
    )
    prediction_log_flush_seconds: float = Field(
        default=5.0, gt=0.0, le=3600.0, validation_alias="PREDICTION_LOG_FLUSH_SECONDS"
    )
    #: How long a Lambda invocation waits for the log before answering (the process freezes).
    prediction_log_flush_timeout_seconds: float = Field(
        default=0.5, ge=0.0, le=10.0, validation_alias="PREDICTION_LOG_FLUSH_TIMEOUT_SECONDS"
    )
    feedback_max_items: int = Field(
        default=1000, ge=1, le=100_000, validation_alias="FEEDBACK_MAX_ITEMS"
    )
    #: Signs the web UI's session cookies (functions/api/ui/session.py). Unset: a random secret
    #: per process, so sessions end when the process does, and several processes (Lambda
    #: environments, uvicorn containers) refuse each other's cookies: set it for those.
    ui_session_secret: SecretStr | None = Field(
        default=None, min_length=32, validation_alias="UI_SESSION_SECRET"
    )
    ui_session_seconds: int = Field(
        default=8 * 3600, ge=60, le=7 * 24 * 3600, validation_alias="UI_SESSION_SECONDS"
    )
    #: The CloudWatch dashboard the serving page links to on Lambda (template.yaml's Dashboard).
    cloudwatch_dashboard: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_\-]{1,255}$", validation_alias="CLOUDWATCH_DASHBOARD"
    )
    aws_region: str | None = Field(
        default=None, pattern=r"^[a-z0-9\-]{1,32}$", validation_alias="AWS_REGION"
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else ()
            except json.JSONDecodeError as exc:
                raise ValueError(f"API_KEYS is not valid JSON: {exc.msg}") from None
        return value

    @field_validator("served_models", mode="before")
    @classmethod
    def _parse_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("served_models")
    @classmethod
    def _valid_model_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        # Each name becomes a route (/predict/{name}) and a registry key.
        for name in names:
            if len(name) > 128 or not NAME_PATTERN.fullmatch(name) or ".." in name:
                raise ValueError(f"SERVED_MODELS: {name!r} is not a valid model name")
        return tuple(dict.fromkeys(names))  # duplicates would be served (and routed) twice

    @model_validator(mode="after")
    def _check_events(self) -> ApiSettings:
        self.events_config()  # a bad EVENT_WEBHOOKS stops the server at start, not at delivery
        return self

    def events_config(self) -> EventsConfig:
        """The webhook settings, parsed and checked (a bad entry raises ``ValueError``)."""
        return EventsConfig(
            EVENT_WEBHOOKS=self.event_webhooks,
            EVENT_WEBHOOK_ALLOW_HTTP_LOOPBACK=self.event_webhook_allow_http_loopback,
            EVENT_MAX_ATTEMPTS=self.event_max_attempts,
            EVENT_BACKOFF_SECONDS=self.event_backoff_seconds,
            EVENT_BACKOFF_MAX_SECONDS=self.event_backoff_max_seconds,
            EVENT_WEBHOOK_TIMEOUT_SECONDS=self.event_webhook_timeout_seconds,
        )

    def tracking_config(self) -> TrackingConfig:
        return TrackingConfig(TRACKING_URI=self.tracking_uri, ARTIFACT_URI=self.artifact_uri)

    def cache_dir(self) -> Path:
        """A private folder for downloaded models (mode 0700)."""
        folder = self.model_cache_dir or Path(tempfile.gettempdir()) / f"model-cache-{os.getuid()}"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        return folder


@functools.lru_cache(maxsize=1)
def get_settings() -> ApiSettings:
    """The process's settings, read once. Tests build ``ApiSettings`` directly instead."""
    return ApiSettings()
