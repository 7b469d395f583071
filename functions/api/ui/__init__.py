"""The web UI under /ui: server-rendered pages (Jinja2), htmx for partial updates, uPlot charts.

    install(app, settings)   adds the routes and the static files (``/ui/static``)

Pages: ``login`` (session), ``experiments`` (experiments, runs table), ``runs`` (run page,
artifacts, compare, histories JSON), ``models`` (registry, promote/rollback), ``serving``
(this process's dashboard). ``core`` has the route class that checks the session, the scope and
CSRF; ``session`` signs cookies and tokens. The vendored scripts (``static/vendor``, see
tools/vendor_ui_assets.py) and ours (``static/ui.js``) are files: the pages run no inline
script and carry no inline style, under the same Content-Security-Policy as /docs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from functions.api.docs import DocsAssets
from functions.api.settings import ApiSettings
from functions.api.ui import experiments, login, models, runs, serving
from functions.api.ui.core import PREFIX, UiState
from functions.api.ui.histories import HistoryCache
from functions.api.ui.session import Sessions

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


def install(app: FastAPI, settings: ApiSettings) -> None:
    """Add the UI to ``app`` (after ``app.state.keyring`` is set)."""
    secret = settings.ui_session_secret
    app.state.ui = UiState(
        sessions=Sessions(
            app.state.keyring,
            None if secret is None else secret.get_secret_value().encode(),
            settings.ui_session_seconds,
        ),
        dashboard_url=dashboard_url(settings),
        histories=HistoryCache(),
    )
    for module in (login, experiments, runs, models, serving):
        app.include_router(module.router)
    app.mount(STATIC_PATH, DocsAssets(directory=STATIC_DIR), name="ui-static")
