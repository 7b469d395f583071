"""The dependency of the admin routes that change the registry: the change runs at most once per
``Idempotency-Key``, then the webhook pass is scheduled (after a replayed answer too)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from pydantic import BaseModel

from functions.api.auth import Principal
from functions.api.deps import IdempotencyDep, PrincipalDep
from functions.api.events import DeliveryDep, EventDelivery
from functions.api.idempotency import IdempotencyKey, run_once
from tracking.stores.ports.idempotency import IdempotencyStore

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class AdminChange:
    request: Request
    principal: Principal
    store: IdempotencyStore
    key: str | None
    delivery: EventDelivery

    @property
    def actor(self) -> str:
        return self.principal.name

    def run(self, body: Any, operation: Callable[[], _M]) -> _M | Response:
        """``operation``'s answer (or the stored one for a repeated key), then the webhook pass."""
        answer = run_once(self.request, self.principal, self.store, self.key, body, operation)
        self.delivery.after_change()
        return answer


def _admin_change(
    request: Request,
    principal: PrincipalDep,
    idempotency: IdempotencyDep,
    delivery: DeliveryDep,
    idempotency_key: IdempotencyKey = None,
) -> AdminChange:
    return AdminChange(request, principal, idempotency, idempotency_key, delivery)


AdminChangeDep = Annotated[AdminChange, Depends(_admin_change)]
