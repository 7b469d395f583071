"""The UI's pages and static files, added to the app on its first request under /ui (see the
package's docstring)."""

from __future__ import annotations

from fastapi import FastAPI

from functions.api.docs import DocsAssets
from functions.api.settings import ApiSettings
from functions.api.ui import (
    STATIC_DIR,
    STATIC_PATH,
    dashboard_url,
    experiments,
    login,
    models,
    runs,
    serving,
)
from functions.api.ui.core import UiState
from functions.api.ui.histories import HistoryCache
from functions.api.ui.session import Sessions


def build(app: FastAPI, settings: ApiSettings) -> None:
    """Add the page routes and the static files (``/ui/static``) to ``app``."""
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
