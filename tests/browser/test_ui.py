"""The web UI (/ui) in Chromium against the real server, on a trained store with the UI corpus.

One server for the module (``python -m functions.api.serve``) on the store of
tests/ui/corpus.py: a churn model (v1 in production, v2 in staging with a hostile reason), a sweep
and a run full of XSS payloads and artifacts of every kind. Every page must load with no console
error, no uncaught exception, no CSP violation and no request to another origin, and no payload
may ever run (``window.__xss`` stays undefined). Screenshots of each page go to
``tests/browser/screenshots/`` (ignored by git; two are copied by hand to docs/img/).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui import corpus
from tests.ui.conftest import UiStore, build_store

from .conftest import Browser, Pages, Recorder, Server, running_server

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
EXP = f"/ui/experiments/{corpus.EXPERIMENT}"


@pytest.fixture(scope="module")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> UiStore:
    return build_store(tmp_path_factory.mktemp("ui-browser"))


@pytest.fixture(scope="module")
def ui_server(ui_store: UiStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    keys = [{"name": name, "scopes": scopes, "sha256": hashlib.sha256(key.encode()).hexdigest()}
            for name, (key, scopes) in corpus.KEYS.items()]  # fmt: skip
    with running_server(
        ui_store.store.tracking_uri,
        ui_store.store.artifact_uri,
        keys,
        tmp_path_factory.mktemp("ui-cache"),
        api_key=corpus.KEYS["admin"][0],
    ) as started:
        yield started


def log_in(pages: Pages, who: str, next_path: str = "") -> tuple[Any, Recorder]:
    page, recorder = pages.open("/ui/login" + (f"?next={next_path}" if next_path else ""))
    page.fill("#api_key", corpus.KEYS[who][0])
    with page.expect_navigation():
        page.click("form.login button[type=submit]")
    return page, recorder


def xss_fired(page: Any) -> bool:
    return bool(page.evaluate("typeof window.__xss !== 'undefined'"))


def clean(pages: Pages, page: Any, recorder: Recorder) -> dict[str, Any]:
    pages.collect(page, recorder)
    problems: dict[str, Any] = dict(recorder.problems())
    if xss_fired(page):
        problems["xss"] = page.url
    return problems


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_every_page_loads_clean(browser: Browser, ui_server: Server, ui_store: UiStore) -> None:
    seeded = ui_store.seeded

    def scenario(pages: Pages) -> dict[str, Any]:
        found: dict[str, Any] = {}
        login_page, login_recorder = pages.open("/ui/login")
        shoot(login_page, "login")
        found["login"] = clean(pages, login_page, login_recorder)
        page, recorder = log_in(pages, "admin")
        # The experiments list fills its run counts with htmx after the page.
        page.wait_for_selector("#experiments .pending", state="detached")
        shoot(page, "experiments")
        found["/ui"] = clean(pages, page, recorder)
        visits = {
            "runs": f"{EXP}?columns=metrics.auc,metrics.loss,params.max_depth,tags.team",
            "run": f"/ui/runs/{seeded.children[2]}",
            "hostile-run": f"/ui/runs/{seeded.hostile}",
            "compare": f"/ui/compare?runs={','.join(seeded.children)}",
            "models": "/ui/models",
            "model": "/ui/models/churn",
            "serving": "/ui/serving",
        }
        for name, path in visits.items():
            page, recorder = pages.open(path)
            if name in {"run", "hostile-run", "compare"}:
                page.wait_for_selector("figure.chart[data-drawn]")
            if name == "serving":
                with page.expect_response(lambda r: "/ui/serving/panel" in r.url, timeout=15_000):
                    pass  # the every-5s refresh came and was swapped in
            shoot(page, name)
            found[name] = clean(pages, page, recorder)
        return found

    found = browser.run(scenario, ui_server)
    assert found == {name: {} for name in found}
    assert len(found) == 9


def test_filter_sort_page_columns_open_and_compare(
    browser: Browser, ui_server: Server, ui_store: UiStore
) -> None:
    seeded = ui_store.seeded

    def ids(page: Any) -> list[str]:
        script = "rows => rows.map(r => r.dataset.runId)"
        return list(page.eval_on_selector_all("#runs tbody tr[data-run-id]", script))

    def scenario(pages: Pages) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        page, recorder = log_in(pages, "reader", next_path=EXP.removeprefix("/ui/"))
        seen["all"] = ids(page)
        # Filter.
        page.fill("#filter", "params.max_depth = '5'")
        with page.expect_navigation():
            page.click("form.search button[type=submit]")
        seen["filtered"] = ids(page)
        # A bad filter: the error is shown inline, naming the problem.
        page.fill("#filter", "metrics.auc >")
        with page.expect_navigation():
            page.click("form.search button[type=submit]")
        seen["error"] = page.inner_text("#filter-error")
        # Sort: "Started" descending, then ascending.
        page.goto(ui_server.base_url + EXP)
        with page.expect_navigation():
            page.click("#runs thead a.sort:has-text('Started')")
        with page.expect_navigation():
            page.click("#runs thead a.sort:has-text('Started')")
        seen["ascending"] = ids(page)
        # Page through with a cursor, two runs a page.
        page.goto(ui_server.base_url + EXP + "?max_results=2&order_by=attributes.start_time+ASC")
        paged = ids(page)
        while page.locator("a.next").count():
            with page.expect_navigation():
                page.click("a.next")
            paged += ids(page)
        seen["paged"] = paged
        # Pick a column: metrics.loss, not shown by default.
        page.goto(ui_server.base_url + EXP + "?columns=metrics.auc")
        page.click("#column-picker summary")
        page.fill(".picker-filter", "loss")
        page.check("input[name=columns][value='metrics.loss']")
        with page.expect_navigation():
            page.click("#apply-columns")
        seen["columns"] = page.eval_on_selector_all(
            "#runs thead th[class^=col-] a", "links => links.map(a => a.textContent.trim())"
        )
        # Open a run.
        with page.expect_navigation():
            page.click(f"#runs tr[data-run-id='{seeded.children[1]}'] td.name a")
        seen["run_title"] = page.inner_text("#run-title")
        # Compare three runs.
        page.goto(ui_server.base_url + EXP)
        for run_id in seeded.children:
            page.check(f"input[name=runs][value='{run_id}']")
        with page.expect_navigation():
            page.click("button.compare-button")
        page.wait_for_selector("figure.chart[data-drawn]")
        seen["compare_columns"] = page.locator("#compare thead th a").count()
        seen["legend"] = page.locator("figure.chart[data-key=loss] .u-legend .u-series").count()
        seen["differs"] = page.locator("#compare tr.differs").count()
        seen["history_requests"] = [
            url for url in recorder.requests
            if "/ui/histories" in url and all(run_id in url for run_id in seeded.children)
        ]  # fmt: skip
        seen["problems"] = clean(pages, page, recorder)
        return seen

    seen = browser.run(scenario, ui_server)
    assert len(seen["all"]) == 5
    assert sorted(seen["filtered"]) == sorted(seeded.children[1:])
    assert "unexpected end of expression" in seen["error"]
    assert seen["ascending"][:4] == [seeded.parent, *seeded.children]
    assert sorted(seen["paged"]) == sorted(seen["all"])
    assert seen["columns"] == ["metrics.auc", "metrics.loss"]
    assert seen["run_title"] == "trial-1"
    assert seen["compare_columns"] == 3
    assert seen["legend"] == 4  # the x series and three runs
    assert seen["differs"] >= 2
    assert len(seen["history_requests"]) == 1  # one bulk read for every chart
    assert seen["problems"] == {}


def test_admin_promotes_and_rolls_back(
    browser: Browser, ui_server: Server, ui_store: UiStore
) -> None:
    registry = ui_store.store.registry

    def scenario(pages: Pages) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        page, recorder = log_in(pages, "admin", next_path="models/churn")
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        form = page.locator("#versions tr[data-version='2'] form.promote")
        form.locator("select[name=to]").select_option("production")
        form.locator("input[name=reason]").fill("better auc " + corpus.XSS[1])
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        seen["after_promote"] = page.get_attribute("[data-alias=production]", "data-version")
        seen["done"] = page.inner_text("#done")
        seen["reason_shown"] = page.inner_text("#history tbody tr:first-child td.reason")
        rollback = page.locator("form.rollback")
        rollback.locator("input[name=reason]").fill("canary failed")
        with page.expect_navigation():
            rollback.locator("button[type=submit]").click()
        seen["after_rollback"] = page.get_attribute("[data-alias=production]", "data-version")
        seen["dialogs"] = dialogs
        shoot(page, "model-after-rollback")
        seen["problems"] = clean(pages, page, recorder)
        return seen

    seen = browser.run(scenario, ui_server)
    assert seen["after_promote"] == "2"
    assert seen["done"] == "Promoted."
    assert seen["reason_shown"] == "better auc " + corpus.XSS[1]  # text, not markup
    assert seen["after_rollback"] == "1"
    assert len(seen["dialogs"]) == 2  # each move asked for confirmation
    assert seen["problems"] == {}
    history = registry.history("churn")
    assert [(h.action.value, h.actor, h.reason) for h in history[-2:]] == [
        ("promote", "admin", "better auc " + corpus.XSS[1]),
        ("rollback", "admin", "canary failed"),
    ]


def test_a_read_key_sees_no_buttons_and_its_post_is_refused(
    browser: Browser, ui_server: Server, ui_store: UiStore
) -> None:
    registry = ui_store.store.registry
    before = registry.history("churn")

    def scenario(pages: Pages) -> dict[str, Any]:
        page, _ = log_in(pages, "reader", next_path="models/churn")
        forms = page.locator("form.promote, form.rollback").count()
        # The reader builds the admin's form by hand, with its own valid CSRF token.
        status = page.evaluate(
            """async () => {
                const body = new URLSearchParams({
                  csrf_token: document.querySelector("form.logout input[name=csrf_token]").value,
                  idempotency_key: "reader-try", to: "production", reason: "x"});
                const r = await fetch("churn/versions/2/promote",
                                      {method: "POST", body});
                return r.status;
            }"""
        )
        return {"forms": forms, "status": status}

    seen = browser.run(scenario, ui_server)
    assert seen == {"forms": 0, "status": 403}
    assert registry.history("churn") == before


def test_csrf_without_a_token_or_with_another_sessions_is_refused(
    browser: Browser, ui_server: Server, ui_store: UiStore
) -> None:
    registry = ui_store.store.registry
    before = (registry.get_model("churn").aliases, registry.history("churn"))

    def submit(page: Any, token: str | None) -> str:
        """Send the v2 promote form with ``token`` (or none) in place of its own."""
        page.evaluate(
            """(token) => {
                const form = document.querySelector("#versions tr[data-version='2'] form.promote");
                const field = form.querySelector("input[name=csrf_token]");
                if (token === null) field.remove(); else field.value = token;
                form.removeAttribute("data-confirm");
                form.querySelector("input[name=reason]").value = "csrf";
            }""",
            token,
        )
        with page.expect_navigation():
            page.click("#versions tr[data-version='2'] form.promote button[type=submit]")
        return str(page.inner_text("#error-message"))

    def scenario(pages: Pages) -> list[str]:
        page, _ = log_in(pages, "admin", next_path="models/churn")
        first_token = page.get_attribute("form.logout input[name=csrf_token]", "value")
        messages = [submit(page, None)]
        # A second session (log in again: a new session id, so a new token).
        page, _ = log_in(pages, "admin", next_path="models/churn")
        second_token = page.get_attribute("form.logout input[name=csrf_token]", "value")
        assert second_token != first_token
        messages.append(submit(page, first_token))
        return messages

    messages = browser.run(scenario, ui_server)
    assert messages == ["missing or invalid CSRF token"] * 2
    assert (registry.get_model("churn").aliases, registry.history("churn")) == before


def test_hostile_text_stays_text_and_html_artifacts_are_only_downloaded(
    browser: Browser, ui_server: Server, ui_store: UiStore
) -> None:
    hostile = ui_store.seeded.hostile
    params = ",".join(f"params.p{i}" for i in range(len(corpus.XSS)))
    tags = ",".join(f"tags.t{i}" for i in range(len(corpus.XSS)))

    def scenario(pages: Pages) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        page, recorder = log_in(pages, "admin", next_path=f"runs/{hostile}")
        seen["param"] = page.inner_text("#params tbody tr:first-child td.text")
        seen["dataset"] = page.inner_text("#datasets tbody td.text")
        page.wait_for_load_state("load")
        seen["images"] = page.eval_on_selector_all(
            "img.artifact-image", "images => images.map(i => [i.alt, i.naturalWidth])"
        )
        downloads = {}
        for name in ("page_html", "drawing_svg", "fake_png"):
            with page.expect_download() as download:
                page.click(f"tr[data-artifact={name}] a.download")
            downloads[name] = download.value.suggested_filename
        seen["downloads"] = downloads
        seen["run_page"] = clean(pages, page, recorder)
        for path in (f"{EXP}?columns={params},{tags}", "/ui/models/churn",
                     f"/ui/runs/{hostile}/artifacts/report_json/text",
                     f"/ui/compare?runs={hostile},{ui_store.seeded.parent}"):  # fmt: skip
            other, other_recorder = pages.open(path)
            seen[path] = clean(pages, other, other_recorder)
        return seen

    seen = browser.run(scenario, ui_server)
    assert seen["param"] == corpus.XSS[0]
    assert seen["dataset"] == f"file: {corpus.XSS[1]}.csv"
    # The real PNG is drawn; fake.png (HTML bytes) is served as an attachment, so never decoded.
    assert sorted(seen["images"]) == [["fake_png", 0], ["image_png", 1]]
    assert seen["downloads"] == {"page_html": "page.html", "drawing_svg": "drawing.svg",
                                 "fake_png": "fake.png"}  # fmt: skip
    for key, problems in seen.items():
        if key.startswith("/") or key == "run_page":
            assert problems == {}, key


def test_the_login_redirect_keeps_the_page(browser: Browser, ui_server: Server) -> None:
    def scenario(pages: Pages) -> str:
        page, _ = pages.open("/ui/models/churn")
        assert re.search(r"/ui/login\?next=models%2Fchurn$", page.url), page.url
        page.fill("#api_key", corpus.KEYS["reader"][0])
        with page.expect_navigation():
            page.click("form.login button[type=submit]")
        return str(page.url)

    assert browser.run(scenario, ui_server).endswith("/ui/models/churn")
