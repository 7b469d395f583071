"""A model's traffic policy over HTTP: read for ``read`` keys, changes for ``admin`` keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from functions.api.admin_change import AdminChangeDep
from functions.api.auth import AuthRoute, requires
from functions.api.deps import RegistryDep
from functions.api.schemas import NamePath, TrafficRequest
from tracking.entities import TrafficPolicy

router = APIRouter(route_class=AuthRoute, prefix="/models", tags=["traffic"])


@router.get("/{name}/traffic", response_model=TrafficPolicy, openapi_extra=requires("read"))
def get_traffic(name: NamePath, registry: RegistryDep) -> TrafficPolicy:
    """The model's traffic policy (production 100 % at revision 0 when none is set)."""
    return registry.get_traffic(name)


@router.put("/{name}/traffic", response_model=TrafficPolicy, openapi_extra=requires("admin"))
def set_traffic(
    name: NamePath, body: TrafficRequest, registry: RegistryDep, change: AdminChangeDep
) -> TrafficPolicy | Response:
    """Set the traffic policy; recorded in the history with the key's name and the reason."""
    return change.run(
        body.model_dump(mode="json"),
        lambda: registry.set_traffic(
            name,
            weights=body.weights,
            shadow=body.shadow,
            sticky=body.sticky,
            reason=body.reason,
            actor=change.actor,
        ),
    )


@router.delete("/{name}/traffic", response_model=TrafficPolicy, openapi_extra=requires("admin"))
def clear_traffic(
    name: NamePath,
    registry: RegistryDep,
    change: AdminChangeDep,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> TrafficPolicy | Response:
    """Send all traffic to production again (recorded like a change)."""
    return change.run(
        {"reason": reason},
        lambda: registry.clear_traffic(name, reason=reason, actor=change.actor),
    )
