"""The UI is built on its first request under /ui, not with the app (see functions/api/ui)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from fastapi.testclient import TestClient

from functions.api import ui
from functions.api.main import create_app
from tests.ui.conftest import UiStore, settings_for

ROOT = Path(__file__).resolve().parents[2]
PAGE_MODULES = {
    "functions.api.ui.pages",
    "functions.api.ui.core",
    "functions.api.ui.experiments",
    "functions.api.ui.login",
    "functions.api.ui.models",
    "functions.api.ui.runs",
    "functions.api.ui.serving",
    "jinja2",
}


def test_building_the_app_imports_no_page_module_until_a_page_is_asked_for(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from fastapi.testclient import TestClient
        from functions.api.main import create_app
        from functions.api.settings import ApiSettings

        app = create_app(ApiSettings(
            TRACKING_URI="sqlite:///{tmp_path}/t.db", ARTIFACT_URI="file://{tmp_path}/a",
            API_KEYS="[]", LOAD_MODELS_ON_START=False, MODEL_CACHE_DIR="{tmp_path}/c",
        ))
        modules = {sorted(PAGE_MODULES)!r}
        before = [name for name in modules if name in sys.modules]
        with TestClient(app) as client:
            health = client.get("/health").status_code
            between = [name for name in modules if name in sys.modules]
            page = client.get("/ui/login").status_code
        after = [name for name in modules if name in sys.modules]
        print(json.dumps([before, health, between, page, after]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, health, between, page, after = json.loads(done.stdout.splitlines()[-1])
    assert (before, health, between) == ([], 200, [])
    assert page == 200
    assert set(after) == PAGE_MODULES


def test_the_first_request_under_ui_adds_the_pages_once(ui_store: UiStore) -> None:
    app = create_app(settings_for(ui_store.store))
    before = len(app.router.routes)
    with TestClient(app, follow_redirects=False) as client:
        # Not under /ui: the API's 404, and the UI stays unbuilt.
        missing = client.get("/uix")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/json")
        assert len(app.router.routes) == before
        assert client.get("/ui").status_code == 303  # to the login form
        built = len(app.router.routes)
        assert built > before
        assert client.get("/ui/login").status_code == 200
        ui.load(app)
        assert len(app.router.routes) == built
        assert client.get("/ui/static/ui.css").status_code == 200


def test_a_wrong_method_on_a_page_lists_its_methods_after_an_api_one_did(
    ui_store: UiStore,
) -> None:
    app = create_app(settings_for(ui_store.store))
    with TestClient(app, follow_redirects=False) as client:
        api = client.delete("/health")  # the Allow table is built before the UI exists
        assert api.status_code == 405
        assert api.headers["allow"] == "GET"
        page = client.put("/ui/login")
        assert page.status_code == 405
        assert set(page.headers["allow"].split(", ")) == {"GET", "POST"}


def test_pages_under_a_root_path_are_found_on_the_first_request(ui_store: UiStore) -> None:
    # uvicorn --root-path (a proxy's prefix): routes match the path within the root path.
    app = create_app(settings_for(ui_store.store))
    with TestClient(app, follow_redirects=False, root_path="/stage") as client:
        assert client.get("/ui/login").status_code == 200
