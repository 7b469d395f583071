"""The UI's auth: login, session cookie flags, redirects, scopes and CSRF."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from functions.api import ui
from functions.api.auth import OPEN, declared_scope
from functions.api.ui.core import UiRoute
from tests.ui import corpus
from tests.ui.conftest import UiStore, csrf_of, login

PAGES = (
    "/ui",
    "/ui/",
    "/ui/models",
    "/ui/models/churn",
    "/ui/serving",
    f"/ui/experiments/{corpus.EXPERIMENT}",
)


def test_every_ui_route_is_a_ui_route_with_a_scope(ui_app: FastAPI) -> None:
    found = {}
    ui.load(ui_app)
    for context in iter_route_contexts(ui_app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and str(context.path).startswith("/ui"):
            assert isinstance(route, UiRoute), context.path
            for method in context.methods or ():
                found[(method, str(context.path))] = declared_scope(route)
    assert {key for key, scope in found.items() if scope == OPEN} == {
        ("GET", "/ui/login"),
        ("POST", "/ui/login"),
    }
    assert found[("POST", "/ui/models/{name}/versions/{version}/promote")] == "admin"
    assert found[("POST", "/ui/models/{name}/rollback")] == "admin"
    assert set(found.values()) == {OPEN, "read", "admin"}


def test_no_session_redirects_to_the_login_form(anonymous: TestClient, ui_store: UiStore) -> None:
    for path in (*PAGES, f"/ui/runs/{ui_store.seeded.hostile}"):
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert "/login" in answer.headers["location"]
    answer = anonymous.get("/ui/models/churn?page_token=x")
    assert answer.headers["location"] == "../login?next=models%2Fchurn%3Fpage_token%3Dx"
    htmx = anonymous.get("/ui/serving/panel", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["hx-refresh"] == "true"
    assert anonymous.get("/ui/histories?runs=x").status_code == 303


def test_login_sets_a_strict_httponly_cookie_and_goes_back(anonymous: TestClient) -> None:
    form = anonymous.get("/ui/login?next=models%2Fchurn")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = anonymous.post(
        "/ui/login",
        data={
            "api_key": corpus.KEYS["reader"][0],
            "csrf_token": token.group(1),
            "next": "models/churn",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "./models/churn"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("ui_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here
    assert anonymous.get("/ui/models/churn").status_code == 200


def test_the_cookie_is_secure_behind_https(anonymous: TestClient) -> None:
    https = {"X-Forwarded-Proto": "https"}
    form = anonymous.get("/ui/login", headers=https)
    assert "Secure" in form.headers["set-cookie"]
    # The client keeps a Secure cookie for https only: send it as the browser would.
    nonce = form.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    answer = anonymous.post(
        "/ui/login",
        headers={**https, "Cookie": f"ui_login={nonce}"},
        data={"api_key": corpus.KEYS["reader"][0], "csrf_token": csrf_of(form.text), "next": ""},
    )
    assert "Secure" in next(c for c in answer.headers.get_list("set-cookie") if "ui_session=" in c)


def test_login_refuses_bad_keys_foreign_forms_and_open_redirects(anonymous: TestClient) -> None:
    def attempt(key: str, token: str | None = None, next_page: str = "") -> tuple[int, str]:
        form = anonymous.get("/ui/login")
        answer = anonymous.post(
            "/ui/login",
            data={
                "api_key": key,
                "csrf_token": csrf_of(form.text) if token is None else token,
                "next": next_page,
            },
        )
        return answer.status_code, answer.text

    status, text = attempt("wrong")
    assert status == 401
    assert "not valid" in text
    status, text = attempt(corpus.KEYS["scorer"][0])
    assert status == 403
    assert "read scope" in text
    status, _ = attempt(corpus.KEYS["reader"][0], token="0" * 64)
    assert status == 403
    assert "ui_session" not in anonymous.cookies
    for hostile in ("https://evil.example/", "//evil.example", "/\\evil.example", "runs//x"):
        form = anonymous.get("/ui/login")
        answer = anonymous.post(
            "/ui/login",
            data={
                "api_key": corpus.KEYS["reader"][0],
                "csrf_token": csrf_of(form.text),
                "next": hostile,
            },
        )
        assert answer.headers["location"] == "./", hostile
        anonymous.cookies.clear()


def test_logout_needs_the_token_and_ends_the_session(reader: TestClient) -> None:
    assert reader.post("/ui/logout").status_code == 403
    assert reader.get("/ui/models").status_code == 200
    token = csrf_of(reader.get("/ui/models").text)
    answer = reader.post("/ui/logout", data={"csrf_token": token})
    assert answer.status_code == 303
    assert answer.headers["location"] == "./login"
    assert reader.get("/ui/models").status_code == 303


def test_a_read_key_sees_no_promote_button_and_gets_403(
    reader: TestClient, ui_store: UiStore
) -> None:
    page = reader.get("/ui/models/churn").text
    assert 'form class="promote"' not in page
    assert 'form class="rollback"' not in page
    before = ui_store.store.registry.get_model("churn").aliases
    token = csrf_of(page)
    for path in ("/ui/models/churn/versions/2/promote", "/ui/models/churn/rollback"):
        answer = reader.post(
            path,
            data={"csrf_token": token, "idempotency_key": "k1", "to": "production", "reason": "x"},
        )
        assert answer.status_code == 403
        assert "admin scope" in answer.text
    assert ui_store.store.registry.get_model("churn").aliases == before


def test_a_cross_site_post_is_refused(admin: TestClient, ui_store: UiStore) -> None:
    token = csrf_of(admin.get("/ui/models/churn").text)
    before = ui_store.store.registry.history("churn")
    answer = admin.post(
        "/ui/models/churn/rollback",
        headers={"Sec-Fetch-Site": "cross-site"},
        data={"csrf_token": token, "idempotency_key": "k2", "reason": "x"},
    )
    assert answer.status_code == 403
    assert ui_store.store.registry.history("churn") == before
    assert login(admin)  # still usable
