"""API keys: ``X-API-Key`` checked against configured SHA-256 hashes, with scopes.

Auth is part of every route: ``AuthRoute`` (the route class of the app and of every router)
wraps each route's handler with a check of the scope the route declares in its OpenAPI extras
(``requires("read")``), read once when the route is built. A route that declares nothing is
refused (fail closed), and a test walks ``app.routes`` so that such a route never ships.

A route class rather than a global dependency: FastAPI solves a dependency on every request,
which cost the prediction routes more than the check itself (bench/serving_bench.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from functions.api.errors import ApiError
from functions.api.settings import ApiKeySpec, ApiSettings

SCOPE_KEY = "x-required-scope"
OPEN = "open"
API_KEY_NAME = "X-API-Key"
SECURITY_SCHEME = "APIKeyHeader"


def requires(scope: str) -> dict[str, Any]:
    """OpenAPI extras for a route that needs ``scope`` (``predict``, ``read`` or ``admin``)."""
    return {SCOPE_KEY: scope}


#: Extras for a route anyone may call.
OPEN_ROUTE: dict[str, Any] = {SCOPE_KEY: OPEN}


def document_security(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the key scheme to an OpenAPI schema: required everywhere but on open operations."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_NAME,
        "description": "Your API key.",
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            open_route = operation.get(SCOPE_KEY) == OPEN
            operation["security"] = [] if open_route else [{SECURITY_SCHEME: []}]
    return schema


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]


class KeyRing:
    """The configured keys. Keys are never stored, only their SHA-256."""

    def __init__(self, specs: tuple[ApiKeySpec, ...]) -> None:
        self._specs = specs
        # Built once, not per request: (expected digest, the principal it authenticates).
        self._entries = tuple(
            (spec.sha256, Principal(spec.name, frozenset(spec.scopes))) for spec in specs
        )

    def __len__(self) -> int:
        return len(self._specs)

    def entries(self) -> tuple[tuple[str, Principal], ...]:
        """(SHA-256 of the key, its principal) for each key: the web UI's sessions name a key
        by a digest of this, so a session ends when its key is removed (functions/api/ui)."""
        return self._entries

    def authenticate_digest(self, presented: str | None) -> tuple[str, Principal] | None:
        """Like ``authenticate``, with the key's SHA-256 (what a UI session is tied to)."""
        principal = self.authenticate(presented)
        if principal is None or presented is None:
            return None
        return hashlib.sha256(presented.encode()).hexdigest(), principal

    def authenticate(self, presented: str | None) -> Principal | None:
        if not presented or len(presented) > 512:
            return None
        digest = hashlib.sha256(presented.encode()).hexdigest()
        found: Principal | None = None
        # Compare with every key, in constant time each, so timing tells nothing about which
        # (or whether one) matched.
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        return found


def load_keys(settings: ApiSettings) -> KeyRing:
    """Keys from ``API_KEYS`` plus, on AWS, the Secrets Manager secret ``API_KEYS_SECRET_ARN``."""
    specs = list(settings.api_keys)
    if settings.api_keys_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        raw = parameters.get_secret(settings.api_keys_secret_arn, max_age=300)
        specs.extend(ApiKeySpec.model_validate(item) for item in json.loads(str(raw)))
    return KeyRing(tuple(specs))


def declared_scope(route: object) -> str | None:
    """The scope a route declares (``requires``/``OPEN_ROUTE``), or ``None``."""
    extra = getattr(route, "openapi_extra", None) or {}
    scope = extra.get(SCOPE_KEY)
    return scope if isinstance(scope, str) else None


_API_KEY_HEADER = API_KEY_NAME.lower().encode()


def _api_key(scope: Any) -> str | None:
    """The first ``X-API-Key`` header, as ``request.headers.get`` reads it, without building a
    ``Headers`` object per request (ASGI header names are lower-case bytes)."""
    for name, value in scope.get("headers", ()):
        if name == _API_KEY_HEADER:
            text: str = value.decode("latin-1")
            return text
    return None


def authorize(request: Request, scope: str | None) -> Principal:
    """401 without a valid key, 403 without ``scope`` (``None``: a route that declared none)."""
    keyring: KeyRing = request.app.state.keyring
    principal = keyring.authenticate(_api_key(request.scope))
    if principal is None:
        raise ApiError(
            401, "unauthorized", "a valid X-API-Key header is required",
            headers={"WWW-Authenticate": "ApiKey"},
        )  # fmt: skip
    if scope is None or scope not in principal.scopes:
        raise ApiError(403, "forbidden", f"this key lacks the {scope or 'required'!s} scope")
    request.state.principal = principal
    return principal


_Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class AuthRoute(APIRoute):
    """An API route whose handler checks the caller's key for the route's declared scope."""

    def _endpoint_handler(self) -> _Handler:
        """What runs once the key is checked: FastAPI's handler of the endpoint."""
        return super().get_route_handler()

    def get_route_handler(self) -> _Handler:
        handler = self._endpoint_handler()
        scope = declared_scope(self)
        if scope == OPEN:
            return handler

        async def authorized_handler(request: Request) -> Response:
            authorize(request, scope)
            return await handler(request)

        return authorized_handler


class DirectRoute(AuthRoute):
    """An ``AuthRoute`` whose endpoint takes only the ``Request`` and returns a ``Response``,
    called directly: FastAPI's per-request machinery (dependency solving, body and response
    handling, an exit stack) has nothing to do for such an endpoint, and was ~9% of a one-row
    prediction under ``bench/serving_bench.py --profile``. The route is still an ``APIRoute``,
    so its OpenAPI operation is generated as for any other.
    """

    def _endpoint_handler(self) -> _Handler:
        endpoint: _Handler = self.endpoint
        return endpoint


async def current_principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal
