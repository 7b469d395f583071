"""The browser harness: one real server and one system Chromium with no network, per session
(tests/conftest.py schedules every test under tests/browser/ on the same xdist worker).

- ``server``: ``python -m functions.api.serve`` (uvicorn, as ``make run`` and the image run it)
  on a free 127.0.0.1 port, on an embedded store with a small churn model in production, and one
  ``predict`` + ``read`` key (``API_KEY``).
- ``browser``: the system's Chromium (Debian's ``chromium`` package; Playwright's own browser
  download is not used) driven by Playwright, headless, with a fresh profile. It has no network:
  host names resolve to nothing but 127.0.0.1, and every request to another origin is recorded
  and aborted (``Recorder.foreign``), so a page that reaches out fails the test whether or not
  the machine could reach the internet.
- ``browser.run(scenario)``: runs ``scenario(pages)`` on the browser's thread (see ``Browser``);
  ``pages.open(path)`` gives a new page with a ``Recorder`` of its requests, console errors,
  uncaught exceptions and Content-Security-Policy violations (``securitypolicyviolation``).

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar
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


def _unavailable(reason: str) -> NoReturn:
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


@contextlib.contextmanager
def running_server(
    tracking_uri: str,
    artifact_uri: str,
    keys: list[dict[str, Any]],
    cache_dir: Path,
    api_key: str = API_KEY,
    **extra_env: str,
) -> Iterator[Server]:
    """``python -m functions.api.serve`` on a free 127.0.0.1 port, on these stores and keys."""
    port = _free_port()
    dropped = ("AWS_", "_LAMBDA", "LAMBDA_", "POWERTOOLS_", "TRACKING_", "ARTIFACT_URI", "API_KEYS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        TRACKING_URI=tracking_uri,
        ARTIFACT_URI=artifact_uri,
        API_KEYS=json.dumps(keys),
        MODEL_CACHE_DIR=str(cache_dir),
        SERVED_MODELS="churn",
        DOCS_ENABLED="true",
        HOST="127.0.0.1",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
        **extra_env,
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
        yield Server(base_url, api_key, ("churn",))
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = trained_store(tmp_path_factory.mktemp("browser-store"))
    keys = [{"name": "browser", "scopes": ["predict", "read"],
             "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]  # fmt: skip
    with running_server(
        store.tracking_uri, store.artifact_uri, keys, tmp_path_factory.mktemp("browser-cache")
    ) as started:
        yield started


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
        found: dict[str, list[Any]] = {
            "requests to another origin": self.foreign,
            "requests outside the API Gateway stage": self.outside_stage,
            "console errors": self.console_errors,
            "uncaught exceptions": self.page_errors,
            "CSP violations": self.violations,
        }
        return {name: items for name, items in found.items() if items}


#: API Gateway's answer to a path outside the stage (REST APIs are reached at /<stage>/...).
_NO_STAGE = '{"message":"Missing Authentication Token"}'
T = TypeVar("T")


class Pages:
    """Opens recorded pages for one scenario; on the browser's thread only (``Browser.run``)."""

    def __init__(self, context: Any, server: Server) -> None:
        self._context = context
        self._server = server
        self._opened: list[tuple[Any, Recorder]] = []
        self._collected: set[int] = set()

    def open(self, path: str, stage: str | None = None) -> tuple[Any, Recorder]:
        """(page, recorder): ``path`` loaded, and everything the page does recorded.

        With ``stage`` the browser plays an API Gateway REST API: it goes to ``/<stage><path>``,
        requests under ``/<stage>/`` reach the server without the prefix (as Lambda sees them),
        and any other path of the origin gets the gateway's 403 and lands in ``outside_stage``.
        """
        origin = self._server.origin
        recorder = Recorder(origin)
        page = self._context.new_page()
        self._opened.append((page, recorder))
        page.add_init_script(_RECORD_VIOLATIONS)
        prefix = f"{origin}/{stage}/" if stage else None

        def route(request_route: Any) -> None:
            url = request_route.request.url
            if url.startswith(("data:", "blob:")):
                request_route.continue_()
            elif _origin(url) != origin:
                recorder.foreign.append(url)
                request_route.abort("blockedbyclient")
            elif prefix is None:
                request_route.continue_()
            elif url.startswith(prefix):
                stripped = origin + "/" + url[len(prefix) :]
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
        page.goto(self._server.base_url + (f"/{stage}" if stage else "") + path)
        return page, recorder

    def collect(self, page: Any, recorder: Recorder) -> None:
        """Copy the page's CSP violations into its recorder (before it navigates away)."""
        recorder.violations = list(page.evaluate("window.__cspViolations || []"))
        self._collected.add(id(recorder))

    def close(self) -> None:
        """Collect each page's CSP violations if not done yet, then close the pages."""
        for page, recorder in self._opened:
            if id(recorder) not in self._collected:
                self.collect(page, recorder)
            page.close()


class Browser:
    """Chromium through Playwright's sync API, on a thread of its own.

    The sync API runs an asyncio loop on the thread that starts it and leaves that loop marked as
    running between calls. On pytest's thread that breaks every later test of the same worker
    that runs a loop itself (Mangum's handler: "This event loop is already running"), so
    Playwright lives on one dedicated thread and tests hand it scenarios: ``run(scenario)``
    calls ``scenario(pages)`` there and returns its result (or raises its exception).
    """

    def __init__(self, server: Server) -> None:
        self._server = server
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
        self._playwright: Any = None
        self._context: Any = None

    def start(self, executable: str, profile: Path) -> None:
        def start() -> None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._context = self._playwright.chromium.launch_persistent_context(
                str(profile),  # a fresh profile: nothing cached, no state from another run
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                service_workers="block",
            )
            self._context.set_default_timeout(30_000)

        self._thread.submit(start).result(timeout=120)

    def run(self, scenario: Callable[[Pages], T], server: Server | None = None) -> T:
        """``scenario(pages)`` on the browser's thread, against ``server`` (default: the
        session's). The browser's cookies are cleared first: each scenario logs in itself."""

        def task() -> T:
            self._context.clear_cookies()
            pages = Pages(self._context, server or self._server)
            try:
                return scenario(pages)
            finally:
                pages.close()

        return self._thread.submit(task).result(timeout=300)

    def stop(self) -> None:
        def stop() -> None:
            if self._context is not None:
                self._context.close()
            if self._playwright is not None:
                self._playwright.stop()

        try:
            self._thread.submit(stop).result(timeout=60)
        finally:
            self._thread.shutdown(wait=True)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's executable, checked before the server is started for nothing."""
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium on the PATH (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (requirements-dev.txt)")
    return executable


@pytest.fixture(scope="session")
def browser(
    chromium: str, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    browser = Browser(server)
    try:
        browser.start(chromium, tmp_path_factory.mktemp("chromium-profile"))
        yield browser
    finally:
        browser.stop()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
