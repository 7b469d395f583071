"""API keys: ``X-API-Key`` checked against configured SHA-256 hashes, with scopes.

Auth is global: one dependency on the app runs for every route and reads the scope the route
declares in its OpenAPI extras (``requires("read")``). A route that declares nothing is refused
(fail closed), and a test walks ``app.routes`` so that such a route never ships.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request

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


def route_scope(request: Request) -> str | None:
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    scope = extra.get(SCOPE_KEY)
    return scope if isinstance(scope, str) else None


async def authorize(request: Request) -> Principal | None:
    """The global dependency: 401 without a valid key, 403 without the route's scope.

    The header is read here rather than through ``Security(APIKeyHeader)``: a sub-dependency is
    another round of dependency solving on every request. The docs still show the scheme (see
    ``document_security``).
    """
    scope = route_scope(request)
    if scope == OPEN:
        return None
    keyring: KeyRing = request.app.state.keyring
    principal = keyring.authenticate(request.headers.get(API_KEY_NAME))
    if principal is None:
        raise ApiError(
            401, "unauthorized", "a valid X-API-Key header is required",
            headers={"WWW-Authenticate": "ApiKey"},
        )  # fmt: skip
    if scope is None or scope not in principal.scopes:
        raise ApiError(403, "forbidden", f"this key lacks the {scope or 'required'!s} scope")
    request.state.principal = principal
    return principal


def current_principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal
