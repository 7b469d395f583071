"""/ui/models and /ui/models/{name}: versions, aliases, audit history, promote and rollback.

Promote and rollback are the API's operations (``registry.promote``/``rollback`` through
``idempotency.run_once``, the same body models): each form carries a fresh Idempotency-Key, so a
form sent twice (a double click, a reload after a lost answer) moves the alias once. The actor in
the audit history is the session's key name, as with ``X-API-Key``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Form, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import RedirectResponse, Response

from functions.api.auth import requires
from functions.api.deps import IdempotencyDep, RegistryDep
from functions.api.idempotency import run_once
from functions.api.schemas import NamePath, PromoteRequest, RollbackRequest, VersionPath
from functions.api.security_headers import html_headers
from functions.api.ui import PREFIX
from functions.api.ui.core import UiRoute, principal_of, render, root_of
from functions.api.views import version_view
from tracking import ModelRegistry, ModelVersion
from tracking.stores.ports.idempotency import IdempotencyStore
from tracking.validation import NAME_PATTERN

router = APIRouter(route_class=UiRoute, prefix=PREFIX, include_in_schema=False)

PAGE_SIZE = 50
Token = Annotated[str | None, Query(max_length=4000)]
IdempotencyField = Annotated[str, Form(max_length=128)]
_B = TypeVar("_B", bound=BaseModel)


@router.get("/models", openapi_extra=requires("read"))
def models(request: Request, registry: RegistryDep, page_token: Token = None) -> Response:
    """Registered models with their aliases."""
    page = registry.list_models(PAGE_SIZE, page_token)
    return render(request, "models.html", page=page, page_token=page_token)


def _model_page(
    request: Request,
    registry: ModelRegistry,
    name: str,
    page_token: str | None = None,
    status: int = 200,
    error: str | None = None,
    done: str | None = None,
) -> Response:
    model = registry.get_model(name)
    versions = registry.list_versions(name, PAGE_SIZE, page_token)
    by_version: dict[int, list[str]] = {}
    for alias, number in sorted(model.aliases.items()):
        by_version.setdefault(number, []).append(alias)
    return render(
        request,
        "model.html",
        status=status,
        model=model,
        versions=[version_view(version) for version in versions.items],
        aliases_of=by_version,
        next_token=versions.next_token,
        page_token=page_token,
        history=list(reversed(registry.history(name))),  # newest first
        # One key per rendered form: sending the same form again replays its first answer.
        new_key=lambda: secrets.token_hex(16),
        error=error,
        done=done,
    )


@router.get("/models/{name}", openapi_extra=requires("read"))
def model(
    request: Request,
    name: NamePath,
    registry: RegistryDep,
    page_token: Token = None,
    done: Annotated[str | None, Query(max_length=20, pattern=r"^(promoted|rolled_back)$")] = None,
) -> Response:
    """A model: versions with signature, run and stage; aliases; the audit history."""
    return _model_page(request, registry, name, page_token, done=done)


def _answer(
    request: Request, registry: ModelRegistry, name: str, result: object, done: str
) -> Response:
    """Redirect after a move (a reload does not send it again), or the page with the error."""
    if isinstance(result, Response) and result.status_code >= 400:
        message = json.loads(bytes(result.body))["error"]["message"]
        return _model_page(request, registry, name, status=result.status_code, error=message)
    location = f"{root_of(request.url.path)}models/{name}?done={done}"
    return RedirectResponse(location, status_code=303, headers=html_headers())


def _check_key(key: str) -> str:
    if not NAME_PATTERN.fullmatch(key):
        raise ValueError("idempotency_key")
    return key


def _move(
    request: Request,
    registry: ModelRegistry,
    idempotency: IdempotencyStore,
    name: str,
    key: str,
    build: Callable[[], _B],
    move: Callable[[_B, str], ModelVersion],
    done: str,
) -> Response:
    """Validate the form, make the move once per key (as the API does), answer as ``_answer``."""
    try:
        body = build()
        checked = _check_key(key)
    except (ValidationError, ValueError) as invalid:
        return _model_page(request, registry, name, status=422, error=_invalid(invalid))
    principal = principal_of(request)
    result = run_once(
        request, principal, idempotency, checked, body.model_dump(mode="json"),
        lambda: version_view(move(body, principal.name)),
    )  # fmt: skip
    return _answer(request, registry, name, result, done)


@router.post("/models/{name}/versions/{version}/promote", openapi_extra=requires("admin"))
def promote(
    request: Request,
    name: NamePath,
    version: VersionPath,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyField,
    to: Annotated[str, Form(max_length=128)] = "production",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Point an alias at a version, as POST /models/{name}/versions/{version}/promote does."""
    return _move(
        request, registry, idempotency, name, idempotency_key,
        lambda: PromoteRequest(to=to, reason=reason or None),
        lambda body, actor: registry.promote(
            name, version, to=body.to, reason=body.reason, actor=actor
        ),
        "promoted",
    )  # fmt: skip


@router.post("/models/{name}/rollback", openapi_extra=requires("admin"))
def rollback(
    request: Request,
    name: NamePath,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyField,
    alias: Annotated[str, Form(max_length=128)] = "production",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Move an alias back to its previous version, as POST /models/{name}/rollback does."""
    return _move(
        request, registry, idempotency, name, idempotency_key,
        lambda: RollbackRequest(alias=alias, reason=reason or None),
        lambda body, actor: registry.rollback(
            name, alias=body.alias, reason=body.reason, actor=actor
        ),
        "rolled_back",
    )  # fmt: skip


def _invalid(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or "form"
        return f"{field}: {first.get('msg', 'invalid')}"
    return f"{error}: use 1-128 letters, digits, _ . -"
