"""The served-model catalog: every model package's declaration, collected by plain imports.

A model name appears only in its own package (``models.churn``, ``models.rag``). Loading a
version picks its predictor by what the registry stored: the package that declares the version's
name *and* flavor, else the flavor's generic predictor built from the stored signature
(``models.tabular``, ``models.onnx_tabular``), so a team's registered model is served without
code here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from models.churn.serving import SERVED as CHURN
from models.churn_baseline.serving import SERVED as CHURN_BASELINE
from models.onnx_tabular import served_model as onnx_served_model
from models.rag.serving import SERVED as RAG
from models.serving import Predictor, ServedModel
from models.tabular import served_model as generic_served_model
from tracking import InvalidInput, ModelRegistry, ModelVersion
from tracking.entities import Flavor

#: The packages' declarations, in the order their routes appear in the docs.
PACKAGES: tuple[ServedModel, ...] = (CHURN, CHURN_BASELINE, RAG)


def _retriever(version: ModelVersion) -> ServedModel:
    # Any BM25 bundle reads as the documentation retriever does: same schemas, its own name.
    return dataclasses.replace(RAG, name=version.name)


#: The flavor registry: how a version of each servable flavor is served without a package.
#: Pickle flavors (sklearn, joblib) have no entry: they are never served generically.
GENERIC: dict[Flavor, Callable[[ModelVersion], ServedModel]] = {
    Flavor.XGBOOST: generic_served_model,
    Flavor.RETRIEVER: _retriever,
    Flavor.ONNX: onnx_served_model,
}


def package(name: str) -> ServedModel | None:
    """The declaration of the package that serves ``name``, if one does."""
    return next((served for served in PACKAGES if served.name == name), None)


def served_model(version: ModelVersion) -> ServedModel:
    """How ``version`` is served: its package's declaration, else its flavor's generic one.

    Raises:
        InvalidInput: no package accepts the version and its flavor has no generic predictor,
            or its signature cannot be turned into a request schema.
    """
    declared = package(version.name)
    if declared is not None and declared.accepts(version):
        return declared
    generic = GENERIC.get(version.flavor)
    if generic is None:
        raise InvalidInput(
            f"{version.name} {version.label}: no model package serves it and flavor "
            f"{version.flavor.value!r} has no generic predictor"
        )
    return generic(version)


def load_served(
    registry: ModelRegistry,
    name: str,
    *,
    version: int | None = None,
    alias: str = "production",
    allow_pickle: bool = False,
    cache_dir: Path | None = None,
) -> tuple[ServedModel, Predictor]:
    """Like ``load_predictor``, with the declaration that serves the loaded version."""
    chosen, model = registry.load_model(
        name, version=version, alias=alias, allow_pickle=allow_pickle, cache_dir=cache_dir
    )
    served = served_model(chosen)
    return served, served.factory(chosen, model)


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
        NotFound: no such model, version or alias target.
        IntegrityError: the artifact does not match the registry's SHA-256.
        InvalidInput: a pickle flavor without ``allow_pickle``, or a version that neither a
            package nor its flavor can serve.
    """
    return load_served(
        registry, name, version=version, alias=alias, allow_pickle=allow_pickle,
        cache_dir=cache_dir,
    )[1]  # fmt: skip
