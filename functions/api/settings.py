"""The server's settings: read once, at the edge, from the environment (pydantic-settings)."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tracking.config import DEFAULT_ARTIFACT_URI, DEFAULT_TRACKING_URI, TrackingConfig

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

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

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
