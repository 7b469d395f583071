"""Auth on every route, built from ``app.routes`` (not from the docs)."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from functions.api import docs, ui
from functions.api.auth import OPEN, SCOPE_KEY, AuthRoute, requires
from functions.api.ui.core import UiRoute
from tests.api.conftest import ADMIN, KEYS, READER, SCORER

OPEN_PATHS = {"/health", "/ready"}
#: The only routes that are not AuthRoutes, all open by design (as FastAPI's own docs routes
#: are): the schema, the two docs pages and the mount of their assets.
DOCS_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"),
               ("MOUNT", docs.STATIC_PATH)}  # fmt: skip
#: The web UI's static files (vendored scripts, stylesheet): open, like the docs' assets. The UI's
#: pages are UiRoutes (session auth), covered by tests/ui/.
UI_STATIC = {("MOUNT", ui.STATIC_PATH)}
SCOPES = {"predict", "read", "admin"}
BODIES = {
    "/predict/churn": {"player_id": "p", "sessions_7d": 1, "playtime_7d": 1.0, "iap_count": 0},
    "/predict/churn/batch": {
        "rows": [{"player_id": "p", "sessions_7d": 1, "playtime_7d": 1.0, "iap_count": 0}]
    },
    "/models/{name}/versions/{version}/promote": {"to": "production"},
}


def api_routes(client: TestClient) -> list[tuple[str, str, str]]:
    """(method, concrete path, declared scope) for every API route of the app."""
    found = []
    ui.load(client.app)  # type: ignore[arg-type]
    # FastAPI resolves included routers lazily; iter_route_contexts yields each route with its
    # effective (prefixed) path and the original APIRoute that carries the declared scope.
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if not isinstance(route, APIRoute) or isinstance(route, UiRoute):
            continue
        # Auth lives in the route class: a plain APIRoute would answer without any key check.
        assert isinstance(route, AuthRoute), f"{context.path} is not an AuthRoute"
        scope = (route.openapi_extra or {}).get(SCOPE_KEY)
        path = re.sub(r"\{version\}", "1", str(context.path))
        path = re.sub(r"\{(name|key)\}", "churn", path)
        path = path.replace("{run_id}", "0" * 32)
        for method in context.methods or ():
            found.append((method, path, scope))
    return found


def other_routes(client: TestClient) -> set[tuple[str, str]]:
    """(method or ``MOUNT``, path) of every route that is not an API route."""
    found = set()
    ui.load(client.app)  # type: ignore[arg-type]  # the UI's routes are added on first use
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if isinstance(route, APIRoute):
            continue
        assert isinstance(route, Route | Mount), f"{context.path}: an unknown kind of route"
        if isinstance(route, Mount):
            found.add(("MOUNT", str(context.path)))
        for method in (context.methods or set()) - {"HEAD"}:
            found.add((method, str(context.path)))
    return found


def docs_assets() -> list[str]:
    """The URL of every file under the docs' assets mount."""
    return sorted(
        f"{docs.STATIC_PATH}/{path.relative_to(docs.STATIC_DIR).as_posix()}"
        for path in docs.STATIC_DIR.rglob("*")
        if path.is_file()
    )


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    template = next((k for k in BODIES if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", k), path)), "")
    return client.request(method, path, json=BODIES.get(template), headers=headers).status_code


def test_every_route_declares_a_known_scope(ro_client: TestClient) -> None:
    routes = api_routes(ro_client)
    assert len(routes) >= 14
    for method, path, scope in routes:
        assert scope in SCOPES | {OPEN}, f"{method} {path} declares no scope"
        if scope == OPEN:
            assert path in OPEN_PATHS, f"{method} {path} must not be open"
    assert {path for _, path, scope in routes if scope == OPEN} == OPEN_PATHS


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong"},
        {"X-API-Key": ""},
        {"X-API-Key": "revoked-key-that-was-never-configured"},
        {"Authorization": f"Bearer {KEYS['admin'][0]}"},
        {"X-API-Key": "x" * 10_000},
    ],
    ids=["none", "wrong", "empty", "revoked", "bearer", "huge"],
)
def test_no_valid_key_is_401_everywhere_but_the_open_routes(
    ro_client: TestClient, headers: dict[str, str]
) -> None:
    checked = 0
    for method, path, scope in api_routes(ro_client):
        status = _call(ro_client, method, path, headers)
        if scope == OPEN:
            assert status in {200, 503}, (method, path)
        else:
            assert status == 401, (method, path, status)
            checked += 1
    assert checked >= 12


def test_a_route_added_to_the_app_itself_is_checked_and_fails_closed(
    trained,
    app_factory,  # type: ignore[no-untyped-def]
) -> None:
    app = app_factory()

    @app.get("/undeclared")
    def undeclared() -> dict[str, str]:
        return {"reached": "yes"}

    @app.get("/reader-only", openapi_extra=requires("read"))
    def reader_only() -> dict[str, str]:
        return {"reached": "yes"}

    client = TestClient(app)
    assert client.get("/undeclared").status_code == 401
    # A valid key with every scope still cannot reach a route that declares none.
    assert client.get("/undeclared", headers=ADMIN).status_code == 403
    assert client.get("/reader-only").status_code == 401
    assert client.get("/reader-only", headers=SCORER).status_code == 403
    assert client.get("/reader-only", headers=READER).json() == {"reached": "yes"}


def test_key_in_the_query_string_is_refused(ro_client: TestClient) -> None:
    for method, path, scope in api_routes(ro_client):
        if scope == OPEN:
            continue
        url = f"{path}?api_key={KEYS['admin'][0]}&X-API-Key={KEYS['admin'][0]}"
        assert _call(ro_client, method, url, {}) == 401, (method, path)


def test_scopes_are_enforced(ro_client: TestClient) -> None:
    for method, path, scope in api_routes(ro_client):
        if scope == OPEN:
            continue
        for who, headers in (("reader", READER), ("scorer", SCORER)):
            status = _call(ro_client, method, path, headers)
            allowed = scope in KEYS[who][1]
            if allowed:
                assert status not in {401, 403}, (who, method, path, status)
            else:
                assert status == 403, (who, method, path, status)
        assert _call(ro_client, method, path, ADMIN) not in {401, 403}, (method, path)


def test_401_and_403_bodies(ro_client: TestClient) -> None:
    unauthorized = ro_client.get("/models")
    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"] == "ApiKey"
    assert unauthorized.json()["error"]["code"] == "unauthorized"
    forbidden = ro_client.post("/models/churn/rollback", headers=READER)
    assert forbidden.json()["error"] == {
        "code": "forbidden",
        "message": "this key lacks the admin scope",
        "request_id": forbidden.headers["x-request-id"],
    }


def test_the_routes_without_a_scope_are_exactly_the_docs(ro_client: TestClient) -> None:
    assert other_routes(ro_client) == DOCS_ROUTES | UI_STATIC


def test_docs_are_open_and_can_be_switched_off(ro_client: TestClient, app_factory,  # type: ignore[no-untyped-def]
                                               trained) -> None:  # fmt: skip
    assets = docs_assets()
    # The pages, the schema and every asset (the vendored files, ours, the licences) need no key.
    assert len(assets) >= 14
    for path in ("/docs", "/redoc", "/openapi.json", *assets):
        assert ro_client.get(path).status_code == 200, path
    schema = ro_client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert schema["paths"]["/health"]["get"]["security"] == []
    closed = TestClient(app_factory(DOCS_ENABLED=False))
    assert other_routes(closed) == UI_STATIC
    for path in ("/docs", "/redoc", "/openapi.json", *assets):
        assert closed.get(path).status_code == 404, path
    assert closed.get("/health").status_code == 200


def test_no_keys_configured_means_everything_is_401(trained, app_factory) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app_factory(API_KEYS="[]"))
    assert client.get("/health").status_code == 200
    assert client.get("/models", headers=ADMIN).status_code == 401


@pytest.mark.parametrize(
    "keys",
    [
        '[{"name": "x", "scopes": ["root"], "sha256": "' + "a" * 64 + '"}]',
        '[{"name": "x", "scopes": ["read"], "sha256": "short"}]',
        "not json",
    ],
)
def test_bad_key_configuration_is_refused_at_start(keys: str) -> None:
    from pydantic import ValidationError

    from functions.api.settings import ApiSettings

    with pytest.raises(ValidationError):
        ApiSettings(API_KEYS=keys)
