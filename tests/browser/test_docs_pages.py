"""/docs and /redoc in a real browser with no network, on the served app (uvicorn).

Swagger UI must list every operation of the schema (every served model's prediction routes
among them) and, with a key entered in "Authorize", call ``POST /predict/churn`` from "Try it
out" and show 200; ReDoc must list every operation. On each page no request may leave the
app's origin, and there may be no console error, uncaught exception or CSP violation.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from .conftest import OpenPage, Recorder, Server, collect_violations

# One server and one browser for the module: the tests run on one xdist worker.
pytestmark = pytest.mark.xdist_group("browser")

SEED = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}


def _operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}


def _assert_clean(page: Any, recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing left the origin, nothing was refused or thrown; says so even under capture."""
    collect_violations(page, recorder)
    with capsys.disabled():
        sys.stdout.write(
            f"\n[browser] {page.url}: {len(recorder.requests)} requests, "
            f"{len(recorder.foreign)} to another origin, {len(recorder.violations)} CSP "
            f"violations, {len(recorder.console_errors)} console errors\n"
        )
    assert recorder.requests, "the recorder saw no request at all"
    assert recorder.problems() == {}, recorder.problems()


def test_swagger_ui_lists_every_operation(
    open_page: OpenPage, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    page, recorder = open_page("/docs")
    expected = _operations(server.schema())
    page.locator(".opblock").first.wait_for()

    shown = set()
    for block in page.locator(".opblock").all():
        method = block.locator(".opblock-summary-method").inner_text().strip()
        path = block.locator(".opblock-summary-path").get_attribute("data-path")
        shown.add((method.upper(), path))

    assert shown == expected
    for model in server.served_models:
        assert {("POST", f"/predict/{model}"), ("POST", f"/predict/{model}/batch")} <= shown
    assert page.title().endswith("Swagger UI")
    _assert_clean(page, recorder, capsys)


def _try_predict(page: Any, server: Server) -> Any:
    """Authorize with the key, then "Try it out" on POST /predict/churn; the response shown."""
    page.locator(".btn.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").first.fill(server.api_key)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()

    operation = page.locator("#operations-predict-predict_churn_predict_churn_post")
    operation.locator(".opblock-summary").first.click()
    operation.locator(".try-out__btn").click()
    operation.locator("textarea.body-param__text").fill(json.dumps(SEED))
    with page.expect_response(lambda r: r.url.endswith("/predict/churn")) as sent:
        operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert sent.value.status == 200
    assert sent.value.request.headers.get("x-api-key") == server.api_key
    assert status.inner_text().strip() == "200"
    body = json.loads(operation.locator(".live-responses-table .microlight").first.inner_text())
    assert body["player_id"] == SEED["player_id"]
    assert 0.0 <= body["churn_probability"] <= 1.0
    return sent.value


def test_swagger_ui_try_it_out_with_a_key_predicts(
    open_page: OpenPage, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    page, recorder = open_page("/docs")

    response = _try_predict(page, server)

    assert response.url == f"{server.base_url}/predict/churn"
    assert f"{server.base_url}/predict/churn" in recorder.requests
    _assert_clean(page, recorder, capsys)


def test_docs_work_behind_an_api_gateway_stage(
    open_page: OpenPage, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """At /Prod/docs (the app sees /docs): the assets, the schema and Try it out stay in /Prod."""
    page, recorder = open_page("/docs", stage="Prod")

    response = _try_predict(page, server)

    assert response.url == f"{server.base_url}/Prod/predict/churn"
    assert f"{server.base_url}/Prod/openapi.json" in recorder.requests
    _assert_clean(page, recorder, capsys)


def test_redoc_lists_every_operation(
    open_page: OpenPage, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    page, recorder = open_page("/redoc")
    schema = server.schema()
    expected = {op["operationId"] for ops in schema["paths"].values() for op in ops.values()}
    sections = page.locator("[data-section-id*='/operation/']")
    sections.first.wait_for()

    shown = {
        str(section.get_attribute("data-section-id")).rsplit("/operation/", 1)[1]
        for section in sections.all()
    }

    assert shown == expected
    assert page.locator("[role='menuitem'], li[data-item-id]").count() > 0
    assert page.title().endswith("ReDoc")
    _assert_clean(page, recorder, capsys)


def test_the_recorder_catches_what_it_guards_against(open_page: OpenPage) -> None:
    """A page that reaches out or breaks its CSP is caught, so the clean results above mean it."""
    from playwright.sync_api import Error

    page, recorder = open_page("/docs")
    cdn = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
    page.evaluate(f"fetch({cdn!r}).catch(() => 0)")
    page.evaluate("document.head.appendChild(document.createElement('style')).textContent = 'a{}'")
    page.wait_for_function("window.__cspViolations.length >= 2")
    collect_violations(page, recorder)
    # What the CSP does not govern (a navigation) the harness's routing still stops.
    with pytest.raises(Error, match="ERR_BLOCKED_BY_CLIENT"):
        page.goto(cdn)

    assert {(v["directive"], v["blocked"]) for v in recorder.violations} == {
        ("connect-src", cdn),
        ("style-src-elem", "inline"),
    }
    assert recorder.foreign == [cdn]
    assert recorder.console_errors  # Chromium reports each refusal on the console too
