"""What every UI page shares: the route class (session, scope, CSRF), templates, error pages.

``UiRoute`` plays for the pages the part ``AuthRoute`` plays for the API: each route declares
its scope (``requires("read")``, ``requires("admin")`` or ``OPEN_ROUTE`` for the login form),
and the wrapper, built once per route, checks it against the session cookie rather than the
``X-API-Key`` header. No session: a page redirects to the login form; an htmx request gets 401
with ``HX-Redirect``. A key without the scope: 403. Every unsafe method also needs the session's
CSRF token. Errors become HTML pages with the API's status codes (``errors.status_for``).

Every URL a page writes is relative (``root`` is the way back to ``/ui/`` from the page), so the
pages work under uvicorn and behind an API Gateway stage alike: there the browser sees
``/Prod/ui/...`` while the app sees ``/ui/...`` (see functions/api/docs.py).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from functions.api.auth import OPEN, Principal, declared_scope
from functions.api.errors import ApiError, public_message, status_for
from functions.api.redaction import Redactor
from functions.api.security_headers import html_headers
from functions.api.ui import PREFIX
from functions.api.ui.histories import HistoryCache
from functions.api.ui.session import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Session, Sessions
from tracking.errors import TrackingError

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template is HTML: every value is escaped unless marked safe
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class UiState:
    """What the app holds for the UI (``app.state.ui``)."""

    sessions: Sessions
    dashboard_url: str | None
    histories: HistoryCache


def root_of(path: str) -> str:
    """The relative URL of ``/ui/`` from a page at ``path`` (``/ui``, ``/ui/x``, ``/ui/x/y``)."""
    depth = path[len(PREFIX) :].count("/")
    if depth == 0:
        return "ui/"
    return "./" if depth == 1 else "../" * (depth - 1)


def _format_time(ms: int | None) -> str:
    if ms is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _format_duration(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0, end - start) / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _format_number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _format_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


_ENV.filters.update(
    time=_format_time, number=_format_number, size=_format_size, q=lambda v: quote(str(v), safe="")
)
_ENV.globals.update(duration=_format_duration)


def session_of(request: Request) -> Session:
    session: Session = request.state.ui_session
    return session


def principal_of(request: Request) -> Principal:
    return session_of(request).principal


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page (or an htmx fragment) with the HTML security headers."""
    ui: UiState = request.app.state.ui
    session: Session | None = getattr(request.state, "ui_session", None)
    values = {
        "root": root_of(request.url.path),
        "session": session,
        "principal": None if session is None else session.principal,
        "can_admin": session is not None and "admin" in session.principal.scopes,
        "csrf": "" if session is None else ui.sessions.csrf_token(session),
        "csrf_field": CSRF_FIELD,
        **context,
    }
    body = _ENV.get_template(template).render(values)
    return HTMLResponse(body, status_code=status, headers={**html_headers(), **(headers or {})})


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    redact: Redactor = request.app.state.redact
    return render(request, "error.html", status=status, status_code=status, message=redact(message))


def _login_redirect(request: Request) -> Response:
    root = root_of(request.url.path)
    if request.headers.get("hx-request"):
        # htmx resolves a redirect against the page, not this fragment's URL: reload the page
        # instead, whose own request then redirects to the form (with ?next=).
        return Response(status_code=401, headers={"HX-Refresh": "true"})
    here = request.url.path[len(PREFIX) :].lstrip("/")
    if request.url.query:
        here += "?" + request.url.query
    location = f"{root}login" + (f"?next={quote(here, safe='')}" if here else "")
    return RedirectResponse(location, status_code=303, headers=html_headers())


async def _presented_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached on the request: the handler reads it again
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


_Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class UiRoute(APIRoute):
    """A UI route: the declared scope is checked against the session, then errors become HTML."""

    def get_route_handler(self) -> _Handler:
        handler = super().get_route_handler()
        scope = declared_scope(self)

        async def ui_handler(request: Request) -> Response:
            ui: UiState = request.app.state.ui
            session = ui.sessions.read(request.cookies.get(SESSION_COOKIE))
            request.state.ui_session = session
            if scope != OPEN:
                if session is None:
                    if request.method in SAFE_METHODS:
                        return _login_redirect(request)
                    return error_page(request, 401, "your session has ended: log in again")
                if scope is None or scope not in session.principal.scopes:
                    return error_page(request, 403, f"this key lacks the {scope} scope")
                request.state.principal = session.principal
            if request.method not in SAFE_METHODS:
                if request.headers.get("sec-fetch-site") == "cross-site":
                    return error_page(request, 403, "cross-site request refused")
                # The login form (open) checks its own token, tied to its ui_login cookie.
                if scope != OPEN and not ui.sessions.check_csrf(
                    session_of(request), await _presented_csrf(request)
                ):
                    return error_page(request, 403, "missing or invalid CSRF token")
            try:
                return await handler(request)
            except TrackingError as error:
                return error_page(request, status_for(error), public_message(error))
            except ApiError as error:
                return error_page(request, error.status, error.message)
            except RequestValidationError as error:
                return error_page(request, 422, _validation_message(error))

        return ui_handler


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in list(error.errors())[:5]:
        location = ".".join(str(part) for part in item.get("loc", ()))
        parts.append(f"{location}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
