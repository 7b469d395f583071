"""What serving needs from a model: the ``Predictor`` protocol and a ``ServedModel`` declaration.

Each model package exports one ``ServedModel`` (``models.churn.SERVED``, ``models.rag.SERVED``):
its registry name, flavor, request and response schemas and a factory that wraps a loaded
artifact. ``models.catalog`` collects them with plain imports; a registered model without a
package is served from its flavor and stored signature (``models.tabular``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, create_model

from tracking import ModelVersion
from tracking.entities import Flavor

#: The prediction counter's ``risk_level`` label for models that have no risk level.
NO_OUTCOME = "none"


class Predictor(Protocol):
    """A loaded model version that answers predictions."""

    @property
    def version(self) -> ModelVersion | None:
        """The registered version (``None`` for a predictor loaded from a file)."""
        ...

    @property
    def label(self) -> str:
        """The version label, e.g. ``v3``."""
        ...

    def predict_records(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """One JSON-ready answer per validated request row, in the order of ``rows``."""
        ...

    def warm_up(self) -> Any:
        """Run one prediction."""
        ...


def _no_outcome(record: dict[str, Any]) -> str:
    return NO_OUTCOME


def batch_models(
    title: str, request: type[BaseModel], response: type[BaseModel]
) -> tuple[type[BaseModel], type[BaseModel]]:
    """``{"rows": [request, ...]}`` and ``{"predictions": [response, ...], "model_version"}``."""
    batch_request = create_model(
        f"{title}BatchRequest",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        rows=(list[request], Field(min_length=1, description="Requests, answered in order.")),  # type: ignore[valid-type]
    )
    batch_response = create_model(
        f"{title}BatchResponse",
        predictions=(list[response], ...),  # type: ignore[valid-type]
        model_version=(str, ...),
    )
    return batch_request, batch_response


@dataclass(frozen=True)
class ServedModel:
    """How one model is served: routes, schemas and the predictor of a loaded version.

    Attributes:
        name: the registry name, and the route ``/predict/{name}``.
        flavor: the flavor its versions must have; loading another flavor falls back to the
            flavor's generic predictor.
        request, response: one row's body and answer (the OpenAPI components).
        factory: ``(version, loaded artifact) -> Predictor``; raises ``InvalidInput`` when the
            version cannot be served this way.
        batch_request, batch_response: ``/predict/{name}/batch``'s bodies (built from
            ``request``/``response`` unless given).
        outcome: the prediction counter's ``risk_level`` label of one answer.
        summary: the single-row operation's summary in the docs.
    """

    name: str
    flavor: Flavor
    request: type[BaseModel]
    response: type[BaseModel]
    factory: Callable[[ModelVersion, Any], Predictor]
    batch_request: type[BaseModel] = field(default=BaseModel)
    batch_response: type[BaseModel] = field(default=BaseModel)
    outcome: Callable[[dict[str, Any]], str] = _no_outcome
    summary: str = ""

    def __post_init__(self) -> None:
        if self.batch_request is BaseModel or self.batch_response is BaseModel:
            title = self.request.__name__.removesuffix("Request")
            built = batch_models(title, self.request, self.response)
            # A frozen dataclass: the defaults are filled in once, here.
            object.__setattr__(self, "batch_request", built[0])
            object.__setattr__(self, "batch_response", built[1])

    def count_outcomes(self, records: Sequence[dict[str, Any]]) -> Counter[str]:
        """How many of ``records`` have each outcome (without a call per record when the model
        has none: a 100-row batch of a generic model would otherwise call it 100 times)."""
        if self.outcome is _no_outcome:
            return Counter({NO_OUTCOME: len(records)})
        return Counter(map(self.outcome, records))

    def accepts(self, version: ModelVersion) -> bool:
        """Whether this package serves ``version`` (its name and flavor)."""
        return version.name == self.name and version.flavor is self.flavor
