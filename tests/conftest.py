"""Test-wide settings: AWS credentials that can only ever reach moto, and a clean environment."""

from __future__ import annotations

import os
from typing import Any

import pytest

# Fake credentials so that botocore never looks for real ones (and never reaches AWS).
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
)
for _name in ("TRACKING_URI", "ARTIFACT_URI", "AWS_ENDPOINT_URL", "AWS_PROFILE", "TRACKING_ACTOR"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _isolated_cwd(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run each test in its own folder, so the embedded default never touches the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def _check_every_response() -> None:
    """Run ``tests.hygiene.check_body`` on every response a test client receives (item 12)."""
    import httpx
    from starlette import testclient

    from tests.hygiene import check_body, names_from_app, names_from_env

    transport = testclient._TestClientTransport
    handle_request = transport.handle_request

    def checked_handle_request(self: Any, request: Any) -> Any:
        response = handle_request(self, request)
        check_body(response.read(), names_from_app(self.app))
        return response

    send = httpx.Client.send

    def checked_send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = send(self, request, **kwargs)
        if not kwargs.get("stream"):
            check_body(response.content, names_from_env())
        return response

    transport.handle_request = checked_handle_request  # type: ignore[method-assign]
    httpx.Client.send = checked_send  # type: ignore[method-assign]


_check_every_response()


# -- item 12's count: how many bodies were checked, summed over pytest-xdist workers ---------
_HYGIENE_TOTAL = "hygiene_bodies"


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests.hygiene import CHECKED

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the count to the controller
        workeroutput[_HYGIENE_TOTAL] = CHECKED.bodies


def pytest_testnodedown(node: Any, error: object) -> None:
    from tests.hygiene import CHECKED

    # Only the xdist controller gets here: add each worker's count to its own.
    CHECKED.add(int(getattr(node, "workeroutput", {}).get(_HYGIENE_TOTAL, 0)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.hygiene import CHECKED

    terminalreporter.write_line(
        f"error hygiene: {CHECKED.bodies} response bodies checked (tests/hygiene.py); "
        "any leak fails its test"
    )


# -- one worker for the browser tests -------------------------------------------------------------
# tests/browser/ starts one server and one Chromium per worker that runs any of its tests, so its
# tests all go to one worker; every other test is still scheduled on its own, as with --dist load.
# (xdist's own --dist loadgroup with xdist_group marks did not group with pytest-xdist 3.8.0 and
# pytest 9.2: the node ids never got their @group suffix, and the tests ran on both workers.)
BROWSER_TESTS = "tests/browser/"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "load":
        return None  # another --dist mode asked for by hand: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class _BrowserTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return BROWSER_TESTS if nodeid.startswith(BROWSER_TESTS) else nodeid

    return _BrowserTestsTogether(config, log)


def _moto_keeps_no_stream_log() -> None:
    """Stop moto from recording DynamoDB stream records (the tracking table has a stream).

    moto appends every write of a streamed table to an in-memory list that it never trims, and
    deep-copies that list with the tables on every TransactWriteItems, so a long registry race
    would copy a growing log thousands of times. No test reads moto's stream (moto does not
    serve DescribeStream; tests/lambda/test_events_handler.py builds stream records from the
    table's items), so the log is not kept. The table's stream setting is still checked.
    """
    try:
        from moto.dynamodb.models.table import StreamShard
    except ImportError:  # moto not installed: nothing to change
        return

    def add(self: Any, old: Any, new: Any) -> None:
        return None

    StreamShard.add = add  # type: ignore[method-assign]


_moto_keeps_no_stream_log()
