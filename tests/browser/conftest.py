"""The browser harness: one real server and one system Chromium with no network, per session.

- ``server``: ``python -m functions.api.serve`` (uvicorn, as ``make run`` and the image run it)
  on a free 127.0.0.1 port, on an embedded store with a small churn model in production, and one
  ``predict`` + ``read`` key (``API_KEY``).
- ``browser``: the system's Chromium (Debian's ``chromium`` package; Playwright's own browser
  download is not used) driven by Playwright, headless, with a fresh profile. It has no network:
  host names resolve to nothing but 127.0.0.1, and every request to another origin is recorded
  and aborted (``Recorder.foreign``), so a page that reaches out fails the test whether or not
  the machine could reach the internet.
- ``open_page``: a new page with a ``Recorder`` of its requests, console errors, uncaught
  exceptions and Content-Security-Policy violations (``securitypolicyviolation`` events).

Without Chromium or Playwright the tests are skipped on a developer's machine, and fail in CI
(``CI=true``): .ci/run installs Chromium, requirements-dev.txt pins Playwright.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.trained import trained_store

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "browser-test-key"
START_TIMEOUT = 90.0  # seconds for the server to load its model and answer /ready
#: Flags that keep Chromium from reaching Google on its own, besides the test's isolation
#: (Playwright adds --headless itself).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Every host name but the server's address resolves to nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
#: Installed before any page script: records CSP violations (the page's CSP does not apply to
#: scripts the debugger injects).
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push({directive: e.violatedDirective, blocked: e.blockedURI,
                               source: e.sourceFile, sample: e.sample});
});
"""


def _unavailable(reason: str) -> None:
    """Fail in CI (a browser test that does not run must not pass silently), skip elsewhere."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true but {reason}: .ci/run installs Chromium, make install-dev Playwright")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """``CHROMIUM`` if set, else the ``chromium`` on the PATH (Debian's package)."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium")


@dataclass
class Server:
    base_url: str
    api_key: str
    served_models: tuple[str, ...]

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    def schema(self) -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(f"{self.base_url}/openapi.json", timeout=10).json()
        return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.kill()
    output, _ = process.communicate(timeout=10)
    return output.decode(errors="replace")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = trained_store(tmp_path_factory.mktemp("browser-store"))
    port = _free_port()
    keys = [{"name": "browser", "scopes": ["predict", "read"],
             "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]  # fmt: skip
    dropped = ("AWS_", "_LAMBDA", "LAMBDA_", "POWERTOOLS_", "TRACKING_", "ARTIFACT_URI", "API_KEYS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        TRACKING_URI=store.tracking_uri,
        ARTIFACT_URI=store.artifact_uri,
        API_KEYS=json.dumps(keys),
        MODEL_CACHE_DIR=str(tmp_path_factory.mktemp("browser-cache")),
        SERVED_MODELS="churn",
        DOCS_ENABLED="true",
        HOST="127.0.0.1",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "functions.api.serve"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        end = time.monotonic() + START_TIMEOUT
        ready = False
        while time.monotonic() < end and process.poll() is None and not ready:
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                ready = httpx.get(f"{base_url}/ready", timeout=2).status_code == 200
            if not ready:
                time.sleep(0.1)
        if not ready:
            pytest.fail(f"the server did not become ready:\n{_stop(process)}")
        yield Server(base_url, API_KEY, ("churn",))
    finally:
        _stop(process)


@dataclass
class Recorder:
    """What one page did: every request URL, and everything that should not have happened."""

    origin: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # requests to another origin (aborted)
    outside_stage: list[str] = field(default_factory=list)  # with a stage: paths it misses
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)

    def problems(self) -> dict[str, list[Any]]:
        found = {
            "requests to another origin": self.foreign,
            "requests outside the API Gateway stage": self.outside_stage,
            "console errors": self.console_errors,
            "uncaught exceptions": self.page_errors,
            "CSP violations": self.violations,
        }
        return {name: items for name, items in found.items() if items}


@dataclass
class Browser:
    context: Any  # playwright.sync_api.BrowserContext


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium on the PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (requirements-dev.txt)")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh profile, nothing cached
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            service_workers="block",
        )
        context.set_default_timeout(30_000)
        try:
            yield Browser(context)
        finally:
            context.close()


#: API Gateway's answer to a path outside the stage (REST APIs are reached at /<stage>/...).
_NO_STAGE = '{"message":"Missing Authentication Token"}'

OpenPage = Callable[..., tuple[Any, Recorder]]


@pytest.fixture
def open_page(browser: Browser, server: Server) -> Iterator[OpenPage]:
    """``open_page(path, stage=None)`` -> (page, recorder): the page loaded and being recorded.

    With ``stage`` the browser plays an API Gateway REST API: it is sent to ``/<stage><path>``,
    requests under ``/<stage>/`` reach the server without the prefix (as Lambda sees them), and
    any other path of the origin gets the gateway's 403 and is recorded in ``outside_stage``.
    """
    pages: list[Any] = []

    def open_(path: str, stage: str | None = None) -> tuple[Any, Recorder]:
        recorder = Recorder(server.origin)
        page = browser.context.new_page()
        pages.append(page)
        page.add_init_script(_RECORD_VIOLATIONS)
        prefix = f"{server.origin}/{stage}/" if stage else None

        def route(request_route: Any) -> None:
            url = request_route.request.url
            if url.startswith(("data:", "blob:")):
                request_route.continue_()
            elif _origin(url) != server.origin:
                recorder.foreign.append(url)
                request_route.abort("blockedbyclient")
            elif prefix is None:
                request_route.continue_()
            elif url.startswith(prefix):
                stripped = server.origin + "/" + url[len(prefix) :]
                request_route.fulfill(response=request_route.fetch(url=stripped))
            else:
                recorder.outside_stage.append(url)
                request_route.fulfill(status=403, body=_NO_STAGE, content_type="application/json")

        page.route("**/*", route)
        page.on("request", lambda request: recorder.requests.append(request.url))
        page.on(
            "console",
            lambda message: (
                recorder.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: recorder.page_errors.append(str(error)))
        page.goto(server.base_url + (f"/{stage}" if stage else "") + path, wait_until="load")
        return page, recorder

    yield open_
    for page in pages:
        page.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def collect_violations(page: Any, recorder: Recorder) -> Recorder:
    """Copy the page's recorded CSP violations into ``recorder`` (call before asserting)."""
    recorder.violations = list(page.evaluate("window.__cspViolations || []"))
    return recorder
