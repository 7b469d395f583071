"""The retriever's request and response schemas, shared by training (the signature) and serving.

``POST /predict/rag`` validates its body with ``RagQuery`` and answers ``RagResponse``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from tracking import signatures
from tracking.entities import FeatureSpec

MAX_QUERY_CHARS = 1000
MAX_K = 50
DEFAULT_K = 5


class RagQuery(BaseModel):
    """A search over the project's documentation. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Strict types: lax mode would read 5.0 or "5" as k=5 and a number as a query.
    query: Annotated[
        StrictStr,
        Field(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            pattern=r"\S",  # at least one non-space character
            description="What to search for, in words.",
            examples=["How do I roll back the production model?"],
        ),
    ]
    k: Annotated[
        StrictInt, Field(ge=1, le=MAX_K, description="How many passages to return at most.")
    ] = DEFAULT_K


class Passage(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable passage id: <source>:<start>-<end> (character offsets).")
    score: float = Field(description="BM25 score; higher is more relevant.")
    text: str
    source: str = Field(description="The corpus file the passage comes from.")


class RagResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    passages: list[Passage] = Field(
        description="Best first; only passages that share a term with the query, at most k."
    )
    model_version: str


def signature() -> list[FeatureSpec]:
    """The registry's input signature: ``RagQuery``'s fields with their bounds."""
    return signatures.from_model(RagQuery)


def output_signature() -> list[FeatureSpec]:
    """The registry's output signature: the fields of each returned ``Passage``."""
    return signatures.from_model(Passage)
