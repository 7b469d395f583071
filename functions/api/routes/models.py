"""The model registry over HTTP: read for ``read`` keys, moves for ``admin`` keys."""

from __future__ import annotations

from fastapi import APIRouter, Response

from functions.api.admin_change import AdminChangeDep
from functions.api.auth import AuthRoute, requires
from functions.api.deps import RegistryDep
from functions.api.schemas import (
    MaxResults,
    NamePath,
    PageToken,
    PromoteRequest,
    RollbackRequest,
    VersionPath,
)
from functions.api.views import version_view
from tracking import Page, RegisteredModel
from tracking.entities import AliasChange, ModelVersionInfo

router = APIRouter(route_class=AuthRoute, prefix="/models", tags=["models"])


@router.get("", response_model=Page[RegisteredModel], openapi_extra=requires("read"))
def list_models(
    registry: RegistryDep, max_results: MaxResults = 100, page_token: PageToken = None
) -> Page[RegisteredModel]:
    """Registered models with their aliases, by name."""
    return registry.list_models(max_results, page_token)


@router.get("/{name}", response_model=RegisteredModel, openapi_extra=requires("read"))
def get_model(name: NamePath, registry: RegistryDep) -> RegisteredModel:
    """One registered model with its aliases."""
    return registry.get_model(name)


@router.get(
    "/{name}/versions", response_model=Page[ModelVersionInfo], openapi_extra=requires("read")
)
def list_versions(
    name: NamePath,
    registry: RegistryDep,
    max_results: MaxResults = 100,
    page_token: PageToken = None,
) -> Page[ModelVersionInfo]:
    """A model's versions, newest first."""
    page = registry.list_versions(name, max_results, page_token)
    return Page(items=[version_view(version) for version in page.items], next_token=page.next_token)


@router.get(
    "/{name}/versions/{version}",
    response_model=ModelVersionInfo,
    openapi_extra=requires("read"),
)
def get_version(name: NamePath, version: VersionPath, registry: RegistryDep) -> ModelVersionInfo:
    """One version: lineage, flavor, SHA-256 and its input and output signatures."""
    return version_view(registry.get_version(name, version))


@router.get("/{name}/history", response_model=list[AliasChange], openapi_extra=requires("read"))
def model_history(name: NamePath, registry: RegistryDep) -> list[AliasChange]:
    """A model's audit history, oldest first."""
    return registry.history(name)


@router.post(
    "/{name}/versions/{version}/promote",
    response_model=ModelVersionInfo,
    openapi_extra=requires("admin"),
)
def promote(
    name: NamePath,
    version: VersionPath,
    body: PromoteRequest,
    registry: RegistryDep,
    change: AdminChangeDep,
) -> ModelVersionInfo | Response:
    """Point an alias (production, staging, ...) at a version; recorded with the key's name."""
    return change.run(
        body.model_dump(mode="json"),
        lambda: version_view(
            registry.promote(name, version, to=body.to, reason=body.reason, actor=change.actor)
        ),
    )


@router.post("/{name}/rollback", response_model=ModelVersionInfo, openapi_extra=requires("admin"))
def rollback(
    name: NamePath,
    registry: RegistryDep,
    change: AdminChangeDep,
    body: RollbackRequest | None = None,
) -> ModelVersionInfo | Response:
    """Move an alias (default production) back to the version it pointed at before."""
    move = body or RollbackRequest()
    return change.run(
        move.model_dump(mode="json"),
        lambda: version_view(
            registry.rollback(name, alias=move.alias, reason=move.reason, actor=change.actor)
        ),
    )
