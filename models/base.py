"""The ``Predictor`` protocol and loading a registered version into one.

Each served model registers a factory here by name; loading downloads the version's artifact,
verifies its SHA-256 against the registry and loads it in the flavor's native format (pickles only
with ``allow_pickle``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from tracking import ModelRegistry, ModelVersion, NotFound


class Predictor(Protocol):
    """A loaded model version that answers predictions."""

    version: ModelVersion

    @property
    def label(self) -> str:
        """The version label, e.g. ``v3``."""
        ...

    def predict(self, rows: Sequence[Any]) -> Sequence[Any]:
        """Predict a batch; results in the order of ``rows``."""
        ...

    def predict_records(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """``predict`` as plain JSON-ready dicts, for serving without a model object per row."""
        ...

    def warm_up(self) -> Any:
        """Run one prediction."""
        ...


#: model name -> "module:factory", the factory taking (ModelVersion, loaded model).
FACTORIES: dict[str, str] = {
    "churn": "models.churn.predictor:ChurnPredictor.from_version",
    "rag": "models.rag.predictor:RagPredictor.from_version",
}


def _factory(name: str) -> Callable[[ModelVersion, Any], Predictor]:
    try:
        target = FACTORIES[name]
    except KeyError:
        raise NotFound(f"no predictor is known for model {name!r}") from None
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def load_predictor(
    registry: ModelRegistry,
    name: str,
    *,
    version: int | None = None,
    alias: str = "production",
    allow_pickle: bool = False,
    cache_dir: Path | None = None,
) -> Predictor:
    """Load ``version`` (else the one ``alias`` points at) of model ``name`` as a Predictor.

    Raises:
        NotFound: no such model, version or alias target, or no predictor for the model.
        IntegrityError: the artifact does not match the registry's SHA-256.
        InvalidInput: a pickle flavor without ``allow_pickle``, or an unusable version.
    """
    factory = _factory(name)
    chosen, model = registry.load_model(
        name, version=version, alias=alias, allow_pickle=allow_pickle, cache_dir=cache_dir
    )
    return factory(chosen, model)
