"""/docs and /redoc in a real browser with no network, on the served app (uvicorn).

Swagger UI must list every operation of the schema (every served model's prediction routes
among them) and, with a key entered in "Authorize", call ``POST /predict/churn`` from "Try it
out" and show 200, also at an API Gateway stage's URL; ReDoc must list every operation. On each
page no request may leave the app's origin, and there may be no console error, uncaught
exception or CSP violation. Each scenario runs on the browser's thread (``Browser.run``) and
returns what it saw; the assertions run here.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from .conftest import Browser, Pages, Recorder, Server

SEED = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}


def _operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}


def _assert_clean(recorder: Recorder, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing left the origin, nothing was refused or thrown; says so even under capture."""
    with capsys.disabled():
        sys.stdout.write(
            f"\n[browser] {url}: {len(recorder.requests)} requests, "
            f"{len(recorder.foreign)} to another origin, {len(recorder.violations)} CSP "
            f"violations, {len(recorder.console_errors)} console errors\n"
        )
    assert recorder.requests, "the recorder saw no request at all"
    assert recorder.problems() == {}, recorder.problems()


def test_swagger_ui_lists_every_operation(
    browser: Browser, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    def scenario(pages: Pages) -> tuple[set[tuple[str, str]], str, Recorder]:
        page, recorder = pages.open("/docs")
        page.locator(".opblock").first.wait_for()
        shown = set()
        for block in page.locator(".opblock").all():
            method = block.locator(".opblock-summary-method").inner_text().strip()
            path = block.locator(".opblock-summary-path").get_attribute("data-path")
            shown.add((method.upper(), str(path)))
        return shown, page.title(), recorder

    shown, title, recorder = browser.run(scenario)

    assert shown == _operations(server.schema())
    for model in server.served_models:
        assert {("POST", f"/predict/{model}"), ("POST", f"/predict/{model}/batch")} <= shown
    assert title.endswith("Swagger UI")
    _assert_clean(recorder, "/docs", capsys)


def _try_predict(page: Any, api_key: str) -> dict[str, Any]:
    """Authorize with the key, then "Try it out" on POST /predict/churn: what was sent and shown."""
    page.locator(".btn.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").first.fill(api_key)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()

    operation = page.locator("#operations-predict-predict_churn_predict_churn_post")
    operation.locator(".opblock-summary").first.click()
    operation.locator(".try-out__btn").click()
    operation.locator("textarea.body-param__text").fill(json.dumps(SEED))
    with page.expect_response(lambda r: r.url.endswith("/predict/churn")) as sent:
        operation.locator("button.execute").click()
    shown = operation.locator(".live-responses-table tr.response")
    shown.locator(".response-col_status").first.wait_for()
    return {
        "url": sent.value.url,
        "status": sent.value.status,
        "key": sent.value.request.headers.get("x-api-key"),
        "shown_status": shown.locator(".response-col_status").first.inner_text().strip(),
        "shown_body": json.loads(shown.locator(".microlight").first.inner_text()),
    }


def _assert_predicted(result: dict[str, Any], server: Server) -> None:
    assert result["status"] == 200
    assert result["key"] == server.api_key
    assert result["shown_status"] == "200"
    assert result["shown_body"]["player_id"] == SEED["player_id"]
    assert 0.0 <= result["shown_body"]["churn_probability"] <= 1.0


def test_swagger_ui_try_it_out_with_a_key_predicts(
    browser: Browser, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    def scenario(pages: Pages) -> tuple[dict[str, Any], Recorder]:
        page, recorder = pages.open("/docs")
        return _try_predict(page, server.api_key), recorder

    result, recorder = browser.run(scenario)

    _assert_predicted(result, server)
    assert result["url"] == f"{server.base_url}/predict/churn"
    assert f"{server.base_url}/predict/churn" in recorder.requests
    _assert_clean(recorder, "/docs (Try it out)", capsys)


def test_docs_work_behind_an_api_gateway_stage(
    browser: Browser, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """At /Prod/docs (the app sees /docs): the assets, the schema and Try it out stay in /Prod."""

    def scenario(pages: Pages) -> tuple[dict[str, Any], Recorder]:
        page, recorder = pages.open("/docs", stage="Prod")
        return _try_predict(page, server.api_key), recorder

    result, recorder = browser.run(scenario)

    _assert_predicted(result, server)
    assert result["url"] == f"{server.base_url}/Prod/predict/churn"
    assert f"{server.base_url}/Prod/openapi.json" in recorder.requests
    _assert_clean(recorder, "/Prod/docs (Try it out)", capsys)


def test_redoc_lists_every_operation(
    browser: Browser, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    def scenario(pages: Pages) -> tuple[set[str], int, str, Recorder]:
        page, recorder = pages.open("/redoc")
        sections = page.locator("[data-section-id*='/operation/']")
        sections.first.wait_for()
        shown = {
            str(section.get_attribute("data-section-id")).rsplit("/operation/", 1)[1]
            for section in sections.all()
        }
        menu = page.locator("[role='menuitem'], li[data-item-id]").count()
        return shown, menu, page.title(), recorder

    shown, menu, title, recorder = browser.run(scenario)

    schema = server.schema()
    assert shown == {op["operationId"] for ops in schema["paths"].values() for op in ops.values()}
    assert menu > 0
    assert title.endswith("ReDoc")
    _assert_clean(recorder, "/redoc", capsys)


def test_the_recorder_catches_what_it_guards_against(browser: Browser) -> None:
    """A page that reaches out or breaks its CSP is caught, so the clean results above mean it."""
    cdn = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"

    def scenario(pages: Pages) -> tuple[Recorder, str]:
        from playwright.sync_api import Error

        page, recorder = pages.open("/docs")
        page.evaluate(f"fetch({cdn!r}).catch(() => 0)")
        page.evaluate(
            "document.head.appendChild(document.createElement('style')).textContent = 'a{}'"
        )
        page.wait_for_function("window.__cspViolations.length >= 2")
        pages.collect(page, recorder)
        # What the CSP does not govern (a navigation), the harness's routing still stops.
        try:
            page.goto(cdn)
        except Error as exc:
            return recorder, str(exc)
        return recorder, "navigated"

    recorder, navigation = browser.run(scenario)

    assert "ERR_BLOCKED_BY_CLIENT" in navigation
    assert recorder.foreign == [cdn]
    assert {(v["directive"], v["blocked"]) for v in recorder.violations} >= {
        ("connect-src", cdn),
        ("style-src-elem", "inline"),
    }
    assert recorder.console_errors  # Chromium reports each refusal on the console too
