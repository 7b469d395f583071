"""/ui/login and /ui/logout."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from functions.api.auth import OPEN_ROUTE, KeyRing, requires
from functions.api.security_headers import html_headers
from functions.api.ui import PREFIX
from functions.api.ui.core import UiRoute, UiState, render, root_of
from functions.api.ui.session import (
    LOGIN_COOKIE,
    LOGIN_SECONDS,
    SESSION_COOKIE,
    clear_cookie,
    set_cookie,
)

router = APIRouter(route_class=UiRoute, prefix=PREFIX, include_in_schema=False)

#: Where a login may send the browser back to: a UI page, relative to /ui/ (never another site:
#: no scheme, no leading slash, no backslash).
_NEXT = re.compile(r"^(?:experiments|runs|compare|models|serving)[A-Za-z0-9_.\-/?=&%,+]{0,1500}$")


def _safe_next(value: str | None) -> str:
    return value if value and _NEXT.fullmatch(value) and "//" not in value else ""


def _form(
    request: Request, next_page: str, status: int = 200, error: str | None = None
) -> Response:
    ui: UiState = request.app.state.ui
    nonce = ui.sessions.new_login_nonce()
    response = render(
        request,
        "login.html",
        status=status,
        login_token=ui.sessions.login_token(nonce),
        next_page=next_page,
        error=error,
    )
    set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_SECONDS)
    return response


@router.get("/login", openapi_extra=OPEN_ROUTE)
def login_form(request: Request, next: str | None = None) -> Response:
    """The login form."""
    return _form(request, _safe_next(next))


@router.post("/login", openapi_extra=OPEN_ROUTE)
def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=512)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=1600)] = "",
) -> Response:
    """Check the key like the API does and start a session."""
    ui: UiState = request.app.state.ui
    next_page = _safe_next(next)
    if not ui.sessions.check_login(request.cookies.get(LOGIN_COOKIE), csrf_token):
        return _form(request, next_page, 403, "the form expired or was not sent by this site; "
                     "try again")  # fmt: skip
    keyring: KeyRing = request.app.state.keyring
    found = keyring.authenticate_digest(api_key.strip())
    if found is None:
        return _form(request, next_page, 401, "that API key is not valid")
    digest, principal = found
    if "read" not in principal.scopes:
        return _form(request, next_page, 403, "this key lacks the read scope the UI needs")
    response = RedirectResponse(
        root_of(request.url.path) + next_page, status_code=303, headers=html_headers()
    )
    set_cookie(response, request, SESSION_COOKIE, ui.sessions.issue(digest),
               ui.sessions.lifetime_seconds)  # fmt: skip
    clear_cookie(response, request, LOGIN_COOKIE)
    return response


@router.post("/logout", openapi_extra=requires("read"))
def logout(request: Request) -> Response:
    """End the session (the cookie is dropped; the form needs the session's CSRF token)."""
    response = RedirectResponse(
        root_of(request.url.path) + "login", status_code=303, headers=html_headers()
    )
    clear_cookie(response, request, SESSION_COOKIE)
    return response
