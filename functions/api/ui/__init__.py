"""The web UI under /ui: server-rendered pages (Jinja2), htmx for partial updates, uPlot charts.

    install(app, settings)   reserves /ui: the pages are built on the first request under it
    load(app)                builds them now (what the first request does; route walkers call it)

Pages (``pages.build`` adds them): ``login`` (session), ``experiments`` (experiments, runs
table), ``runs`` (run page, artifacts, compare, histories JSON), ``models`` (registry,
promote/rollback), ``serving`` (this process's dashboard). ``core`` has the route class that
checks the session, the scope and CSRF; ``session`` signs cookies and tokens. The vendored
scripts (``static/vendor``, see tools/vendor_ui_assets.py) and ours (``static/ui.js``) are files:
the pages run no inline script and carry no inline style, under the same Content-Security-Policy
as /docs.

Why deferred: importing the page modules (their routes, Jinja2, the form parser) took 55-85 ms
of a Lambda cold start that serves predictions (docs/aws_deployment.md), and most environments
never serve a page. This package therefore imports nothing of them until asked.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from functions.api.settings import ApiSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.datastructures import URLPath

PREFIX = "/ui"
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PATH = f"{PREFIX}/static"


def dashboard_url(settings: ApiSettings) -> str | None:
    """The CloudWatch console's page of the stack's dashboard (or its region's list)."""
    region = settings.aws_region
    if region is None:
        return None
    base = f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
    if settings.cloudwatch_dashboard:
        return f"{base}#dashboards/dashboard/{settings.cloudwatch_dashboard}"
    return f"{base}#dashboards:"


class _Deferred(BaseRoute):
    """Stands in for the UI's routes until the first request under /ui, which adds them to the
    app in its place (``load``) and is then dispatched again, to them."""

    def __init__(self, app: FastAPI, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self.lock = threading.Lock()
        self.loaded = False
        # Matched as routes match (the path within any root path), whatever the method.
        self.paths = (Route(PREFIX, _unreachable), Route(f"{PREFIX}/{{path:path}}", _unreachable))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Once loaded, this route is no longer in the app's routes: nothing to check here.
        if any(path.matches(scope)[0] != Match.NONE for path in self.paths):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        load(self.app)
        await self.app.router(scope, receive, send)


async def _unreachable(request: Request) -> Response:  # pragma: no cover - never dispatched
    raise RuntimeError("the deferred UI route only matches")


def install(app: FastAPI, settings: ApiSettings) -> None:
    """Reserve /ui on ``app`` (after ``app.state.keyring`` is set); see ``load``."""
    app.router.routes.append(_Deferred(app, settings))


def load(app: FastAPI) -> None:
    """Add the UI's routes and static files to ``app``, where ``install`` reserved them (once)."""
    for route in list(app.router.routes):
        if isinstance(route, _Deferred):
            with route.lock:
                if route.loaded:
                    return
                from functions.api.ui import pages

                pages.build(app, route.settings)
                app.router.routes.remove(route)
                route.loaded = True
            return
