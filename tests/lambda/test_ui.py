"""The web UI through ``functions.api.main.handler``, as an API Gateway REST API stage sends it.

The browser is at ``/Prod/ui/...`` while the app sees ``/ui/...``: every link, form action and
redirect must be relative. API Gateway is https only (``X-Forwarded-Proto: https``), so the
cookies must be ``Secure``. The UI's scripts and stylesheet come back as text.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from functions.api import ui

from .support import API_KEY, LambdaContext, load_event, set_body, set_header


def _event(path: str, method: str = "GET", cookie: str | None = None) -> dict[str, Any]:
    event = load_event("rest_v1_health")
    event["resource"] = "/{proxy+}"
    event["path"] = path
    event["httpMethod"] = method
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["resourcePath"] = "/{proxy+}"
    event["requestContext"]["path"] = f"/Prod{path}"
    event["requestContext"]["httpMethod"] = method
    set_header(event, "X-API-Key", None)
    set_header(event, "Accept", "text/html")
    set_header(event, "Cookie", cookie)
    return event


def _cookies(raw: dict[str, Any]) -> list[str]:
    multi = raw.get("multiValueHeaders") or {}
    found = [v for k, values in multi.items() if k.lower() == "set-cookie" for v in values]
    single = (raw.get("headers") or {}).get("set-cookie")
    return found + ([single] if single else [])


def test_login_and_a_page_behind_a_stage(handler: Any, context: LambdaContext) -> None:
    form = handler(_event("/ui/login"), context)
    assert form["statusCode"] == 200
    assert form["isBase64Encoded"] is False
    assert 'action="login"' in form["body"]
    assert 'href="./static/ui.css"' in form["body"]
    assert 'src="/' not in form["body"]
    assert 'href="/' not in form["body"]
    (login_cookie,) = _cookies(form)
    assert "Secure" in login_cookie
    assert "HttpOnly" in login_cookie
    nonce = login_cookie.split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', form["body"])
    assert token is not None

    event = _event("/ui/login", "POST", cookie=nonce)
    set_header(event, "Content-Type", "application/x-www-form-urlencoded")
    set_body(event, urlencode({"api_key": API_KEY, "csrf_token": token.group(1), "next": "models"}))
    answer = handler(event, context)
    assert answer["statusCode"] == 303
    location = {k.lower(): v for k, v in answer["headers"].items()}["location"]
    assert location == "./models"  # /Prod/ui/models in the browser
    session = next(c for c in _cookies(answer) if c.startswith("ui_session="))
    assert "Secure" in session
    assert "SameSite=strict" in session

    page = handler(_event("/ui/models", cookie=session.split(";")[0]), context)
    assert page["statusCode"] == 200
    assert 'href="./models/churn"' in page["body"]
    headers = {k.lower(): v for k, v in page["headers"].items()}
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_the_ui_assets_are_text(handler: Any, context: LambdaContext) -> None:
    for name in ("ui.js", "ui.css", "vendor/htmx/htmx.min.js", "vendor/uplot/uPlot.iife.min.js"):
        raw = handler(_event(f"/ui/static/{name}"), context)
        assert raw["statusCode"] == 200, name
        assert raw["isBase64Encoded"] is False
        assert raw["body"].encode() == (ui.STATIC_DIR / name).read_bytes()
