"""The churn model's input schema, shared by training and serving.

One pydantic model: the API validates requests with it, training writes it as an artifact, and
the order of ``FEATURE_NAMES`` is the column order of the XGBoost model. Optional features may be
missing; XGBoost treats a missing value (NaN) natively.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tracking import signatures
from tracking.entities import FeatureSpec

PlayerId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$",
        description="The game's player id: letters, digits and _ . : - (at most 64).",
        examples=["p_12345"],
    ),
]


class ChurnFeatures(BaseModel):
    """One player's recent activity. Unknown fields are refused; NaN and Infinity too."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    player_id: PlayerId
    sessions_7d: Annotated[int, Field(ge=0, le=10_000, description="Sessions in the last 7 days.")]
    playtime_7d: Annotated[
        float, Field(ge=0, le=10_080, description="Minutes played in the last 7 days.")
    ]
    iap_count: Annotated[
        int, Field(ge=0, le=10_000, description="In-app purchases in the last 7 days.")
    ]
    days_since_install: Annotated[int | None, Field(ge=0, le=20_000)] = None
    sessions_prev_7d: Annotated[
        int | None, Field(ge=0, le=10_000, description="Sessions in the 7 days before.")
    ] = None
    avg_session_minutes: Annotated[float | None, Field(ge=0, le=1_440)] = None
    friends_count: Annotated[int | None, Field(ge=0, le=100_000)] = None
    level: Annotated[int | None, Field(ge=0, le=100_000)] = None
    iap_spend_30d: Annotated[
        float | None, Field(ge=0, le=1_000_000, description="Purchases in the last 30 days (USD).")
    ] = None
    days_since_last_login: Annotated[int | None, Field(ge=0, le=20_000)] = None

    @field_validator(
        "sessions_7d", "playtime_7d", "iap_count", "days_since_install", "sessions_prev_7d",
        "avg_session_minutes", "friends_count", "level", "iap_spend_30d", "days_since_last_login",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        # Lax mode would read true as 1 and "3" as 3; the schema says number, so refuse them.
        # (Integral floats such as 3.0 stay accepted for integer fields, as JSON Schema allows.)
        if isinstance(value, bool | str):
            raise ValueError("must be a JSON number, not a boolean or a string")
        return value


#: Model columns, in order (``player_id`` identifies the row and is not a feature).
FEATURE_NAMES: tuple[str, ...] = tuple(
    name for name in ChurnFeatures.model_fields if name != "player_id"
)
REQUIRED_FEATURES = ("sessions_7d", "playtime_7d", "iap_count")
#: XGBoost feature types: "int" for counts, "float" for continuous values.
FEATURE_TYPES: dict[str, str] = {
    name: "float" if "float" in str(ChurnFeatures.model_fields[name].annotation) else "int"
    for name in FEATURE_NAMES
}


def to_row(features: ChurnFeatures | dict[str, Any]) -> list[float]:
    """The model's input row; a missing optional feature is NaN."""
    values = features.model_dump() if isinstance(features, ChurnFeatures) else features
    row = []
    for name in FEATURE_NAMES:
        value = values.get(name)
        row.append(math.nan if value is None else float(value))
    return row


def signature() -> list[FeatureSpec]:
    """The registry's input signature: ``ChurnFeatures``' fields with their bounds."""
    return signatures.from_model(ChurnFeatures)
