"""Serving passages from a registered retriever version.

The registry downloads the bundle, checks its SHA-256 and reads it with the ``retriever`` flavor
(no pickle); ``RagPredictor.from_version`` turns that into a ``BM25Index``. ``from_path`` loads a
bundle file directly, verified against a SHA-256 when one is given (no registry involved).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.rag.features import Passage, RagQuery, RagResponse
from models.rag.retriever import BM25Index
from tracking import IntegrityError, InvalidInput, ModelVersion
from tracking.flavors import RetrieverIndex

WARM_UP_QUERY = RagQuery(query="how do I promote a model to production", k=3)
#: Scores are rounded for the response: float32 sums carry no more meaningful digits.
SCORE_DIGITS = 6


class RagPredictor:
    """A loaded, verified retriever version."""

    def __init__(self, version: ModelVersion | None, index: BM25Index, label: str) -> None:
        self.version = version
        self.index = index
        self._label = label

    @classmethod
    def from_version(cls, version: ModelVersion, loaded: Any) -> RagPredictor:
        """Wrap the ``retriever`` flavor's loaded bundle.

        Raises:
            InvalidInput: not a retriever bundle, or not a BM25 one.
        """
        if not isinstance(loaded, RetrieverIndex):
            raise InvalidInput(
                f"{version.name} {version.label} is a {version.flavor.value} model, not a retriever"
            )
        return cls(version, BM25Index.from_bundle(loaded), version.label)

    @classmethod
    def from_path(
        cls, path: Path, *, sha256: str | None = None, label: str = "local"
    ) -> RagPredictor:
        """Load a bundle file, checking its SHA-256 first when ``sha256`` is given.

        Raises:
            IntegrityError: the file does not match ``sha256``.
            InvalidInput: not a pickle-free BM25 bundle.
        """
        if sha256 is not None:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            if digest.hexdigest() != sha256.lower():
                raise IntegrityError(f"{path.name} does not match its SHA-256")
        return cls(None, BM25Index.load(path), label)

    @property
    def label(self) -> str:
        return self._label

    def predict(self, query: str, k: int) -> list[Passage]:
        """The best ``k`` passages for ``query``, best first; fewer when fewer passages share a
        term with it (none for a query of stop words only)."""
        return [
            Passage.model_construct(
                id=chunk.id, score=round(score, SCORE_DIGITS), text=chunk.text,
                source=chunk.source,
            )
            for chunk, score in self.index.search(query, k)
        ]  # fmt: skip

    def respond(self, request: RagQuery) -> RagResponse:
        """The HTTP answer for one validated request."""
        return RagResponse.model_construct(
            passages=self.predict(request.query, request.k), model_version=self.label
        )

    def predict_records(self, rows: Sequence[RagQuery]) -> list[dict[str, Any]]:
        """One plain JSON-ready answer per request, in order (for serving without models)."""
        return [
            {
                "passages": [
                    {"id": chunk.id, "score": round(score, SCORE_DIGITS), "text": chunk.text,
                     "source": chunk.source}
                    for chunk, score in self.index.search(row.query, row.k)
                ],
                "model_version": self.label,
            }
            for row in rows
        ]  # fmt: skip

    def warm_up(self) -> RagResponse:
        """One search, so the first request does not pay for lazy initialisation."""
        return self.respond(WARM_UP_QUERY)
