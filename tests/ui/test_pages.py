"""Each page over TestClient: headers, escaping, the runs table, artifacts, compare, histories."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from fastapi.testclient import TestClient

from functions.api import ui
from functions.api.main import create_app
from tests.ui import corpus
from tests.ui.conftest import UiStore, login, settings_for

EXP = f"/ui/experiments/{corpus.EXPERIMENT}"


class _Tags(HTMLParser):
    """Every start tag with its attributes, to check what a page would run or style."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def assert_safe_page(page: str) -> None:
    """No inline script, no inline style, no event handler attribute, no payload as markup."""
    for tag, attrs in tags_of(page):
        if tag == "script":
            assert attrs.get("src"), "inline script"
        assert tag not in {"style", "iframe", "svg", "img"} or (
            tag == "img" and attrs.get("class") == "artifact-image"
        ), tag
        assert "style" not in attrs, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)


def test_every_page_has_the_strict_policy(admin: TestClient, ui_store: UiStore) -> None:
    seeded = ui_store.seeded
    pages = [
        "/ui",
        "/ui/models",
        "/ui/models/churn",
        "/ui/serving",
        "/ui/serving/panel",
        EXP,
        f"/ui/runs/{seeded.hostile}",
        f"/ui/runs/{seeded.children[0]}",
        f"/ui/compare?runs={','.join(seeded.children)}",
        "/ui/login",
        f"/ui/runs/{seeded.hostile}/artifacts/report_json/text",
    ]
    for path in pages:
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy, path
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert_safe_page(answer.text)


def test_hostile_values_are_shown_as_text(admin: TestClient, ui_store: UiStore) -> None:
    seeded = ui_store.seeded
    pages = [
        admin.get(f"/ui/runs/{seeded.hostile}").text,
        admin.get(f"{EXP}?columns=params.p0,params.p1,tags.t2,tags.t5").text,
        admin.get(f"/ui/compare?runs={seeded.hostile},{seeded.children[0]}").text,
        admin.get("/ui/models/churn").text,
        admin.get(f"/ui/runs/{seeded.hostile}/artifacts/report_json/text").text,
    ]
    for page in pages:
        assert_safe_page(page)
        assert "<script>window.__xss" not in page
        assert "onerror=" not in page.replace("onerror=&#34;", "").replace(
            "onerror=window", "escaped"
        )
    run_page = pages[0]
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in run_page  # a param, a tag
    assert "file: &lt;img src=x onerror=&#34;window.__xss=1&#34;&gt;.csv" in run_page  # dataset
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in pages[3]  # the promotion reason


def test_dataset_sources_and_artifacts_name_no_storage_location(
    admin: TestClient, ui_store: UiStore
) -> None:
    page = admin.get(f"/ui/runs/{ui_store.seeded.hostile}").text
    assert str(ui_store.store.folder) not in page
    assert "file://" not in page


def test_artifacts_images_inline_everything_else_attachment(
    admin: TestClient, ui_store: UiStore
) -> None:
    base = f"/ui/runs/{ui_store.seeded.hostile}/artifacts"
    image = admin.get(f"{base}/image_png")
    assert image.headers["content-type"] == "image/png"
    assert image.content == corpus.png_bytes()
    assert "content-disposition" not in image.headers
    for name, body in (
        ("page_html", corpus.HTML_ARTIFACT),
        ("drawing_svg", corpus.SVG_ARTIFACT),
        ("fake_png", corpus.HTML_ARTIFACT),
    ):
        answer = admin.get(f"{base}/{name}")
        assert answer.status_code == 200
        assert answer.content == body
        assert answer.headers["content-type"] == "application/octet-stream", name
        assert answer.headers["content-disposition"].startswith("attachment;"), name
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in answer.headers["content-security-policy"]
    text = admin.get(f"{base}/report_json/text")
    assert "&lt;script&gt;" in text.text
    assert admin.get(f"{base}/page_html/text").status_code == 422  # HTML is never shown
    assert admin.get(f"{base}/missing").status_code == 404


def test_a_tampered_artifact_is_refused(admin: TestClient, ui_store: UiStore) -> None:
    """Bytes that no longer match the recorded SHA-256 never reach the browser."""
    run = ui_store.store.logger.get_run(ui_store.seeded.hostile)
    stored = Path(run.artifacts["report_json"].uri.removeprefix("file://"))
    original = stored.read_bytes()
    try:
        stored.write_bytes(original.replace(b"note", b"NOTE"))
        for path in ("report_json", "report_json/text"):
            answer = admin.get(f"/ui/runs/{run.run_id}/artifacts/{path}")
            assert answer.status_code == 503
            assert "integrity" in answer.text
            assert b"NOTE" not in answer.content
    finally:
        stored.write_bytes(original)


def test_runs_table_filters_orders_and_shows_chosen_columns(
    admin: TestClient, ui_store: UiStore
) -> None:
    page = admin.get(
        EXP,
        params={
            "filter": "params.max_depth = '5'",
            "order_by": "metrics.auc DESC",
            "columns": "metrics.auc,params.max_depth",
        },
    ).text
    ids = re.findall(r'data-run-id="(\w+)"', page)
    assert ids == [ui_store.seeded.children[2], ui_store.seeded.children[1]]
    headers = re.findall(r'class="col-(\w+)"', page)
    assert headers == ["metrics", "params"]  # only the chosen columns
    assert (
        "learning_rate</a>"
        not in page.split("<tbody>")[0].split("</thead>")[0].split('<table class="grid runs"')[-1]
    )
    assert "sorted-desc" in page


def test_filter_errors_are_shown_inline(admin: TestClient) -> None:
    for query, words in (
        ("metrics.auc >", "unexpected end of expression"),
        ("bogus.x = 1", "bogus"),
    ):
        answer = admin.get(EXP, params={"filter": query})
        assert answer.status_code == 200
        found = re.search(r'<p class="error" id="filter-error"[^>]*>(.*?)</p>', answer.text, re.S)
        assert found is not None, query
        assert words in found.group(1)
        assert f'value="{query.replace(">", "&gt;")}"' in answer.text  # the box keeps the query
    valid = admin.get(EXP, params={"filter": "metrics.auc > 5"}).text
    assert "filter-error" not in valid
    assert "No runs match" in valid
    bad_column = admin.get(EXP, params={"columns": "secrets.x"})
    assert "column &#39;secrets.x&#39;" in bad_column.text
    assert "filter-error" in admin.get(EXP, params={"page_token": "forged"}).text


def test_runs_table_pages_with_a_cursor_and_groups_sweeps(
    admin: TestClient, ui_store: UiStore
) -> None:
    seen: list[str] = []
    url = f"{EXP}?max_results=2&order_by=attributes.start_time+ASC"
    for _ in range(5):
        page = admin.get(url).text
        seen += re.findall(r'data-run-id="(\w+)"', page)
        found = re.search(r'class="next" href="\?([^"]+)"', page)
        if found is None:
            break
        url = f"{EXP}?{found.group(1).replace('&amp;', '&')}"
    seeded = ui_store.seeded
    assert sorted(seen) == sorted([seeded.parent, *seeded.children, seeded.hostile])
    whole = admin.get(f"{EXP}?order_by=attributes.start_time+ASC").text
    rows = re.findall(r'<tr class="depth-(\d)" data-run-id="(\w+)"', whole)
    assert rows[:4] == [("0", seeded.parent)] + [("1", child) for child in seeded.children]
    # On a page without its parent a child says whose child it is.
    page = admin.get(f"{EXP}?filter=params.max_depth+%3D+%275%27").text
    assert page.count("(child of ") == 2


def test_column_picker_offers_keys_of_the_page(admin: TestClient) -> None:
    page = admin.get(EXP).text
    assert 'value="metrics.loss"' in page
    assert 'value="params.max_depth"' in page
    # By default a few columns, never every key.
    assert len(re.findall(r'class="col-', page)) <= 7


def test_run_page_charts_read_histories_in_one_request(
    admin: TestClient, ui_store: UiStore
) -> None:
    seeded = ui_store.seeded
    page = admin.get(f"/ui/compare?runs={','.join(seeded.children)}").text
    src = re.search(r'data-src="([^"]+)"', page)
    assert src is not None
    url = "/ui/" + src.group(1).replace("&amp;", "&").removeprefix("./")
    body = admin.get(url).json()
    assert set(body["runs"]) == set(seeded.children)
    assert all(set(by_key) == {"auc", "loss"} for by_key in body["runs"].values())
    steps, values = body["runs"][seeded.children[0]]["loss"]
    assert steps == list(range(50))
    assert values[0] == 1.0
    hostile = admin.get(f"/ui/histories?runs={seeded.hostile}&keys=noisy").json()
    steps, values = hostile["runs"][seeded.hostile]["noisy"]
    assert len(steps) <= 1000
    assert steps[0] == 0
    assert steps[-1] == corpus.HISTORY_STEPS - 1
    assert max(values) == 5.0 + 0.34  # the spike at step 1234 survives downsampling
    assert "differs" in page  # max_depth and auc differ between trials


def test_compare_needs_two_to_ten_runs(admin: TestClient, ui_store: UiStore) -> None:
    one = admin.get(f"/ui/compare?runs={ui_store.seeded.parent}")
    assert one.status_code == 422
    assert "compare 2 to 10" in one.text
    repeated = "&".join(f"runs={run}" for run in ui_store.seeded.children)
    assert admin.get(f"/ui/compare?{repeated}").status_code == 200
    assert admin.get("/ui/compare?runs=a,b").status_code == 404
    assert (
        admin.get(
            "/ui/histories?runs=" + ",".join(["a"] * 1 + [str(i) for i in range(11)])
        ).status_code
        == 422
    )


def test_experiments_list_summaries(admin: TestClient) -> None:
    page = admin.get("/ui").text
    assert corpus.EXPERIMENT in page
    assert "experiment-summaries?names=" in page
    names = f"missing,churn,{corpus.EXPERIMENT}"
    fragment = admin.get(f"/ui/experiment-summaries?names={names}").text
    counts = re.findall(r'id="runs-(\d)" hx-swap-oob="true">(\d+)<', fragment)
    assert counts == [("1", "2"), ("2", "5")]


def test_serving_dashboard_counts_predictions(admin: TestClient, ui_store: UiStore) -> None:
    key = {"X-API-Key": corpus.KEYS["admin"][0]}
    seed = {"player_id": "p", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}
    assert admin.post("/predict/churn", json=seed, headers=key).status_code == 200
    panel = admin.get("/ui/serving/panel").text
    rows = re.findall(r"<tr><td>churn</td><td>(v\d)</td><td>(\w+)</td><td>(\d+)</td></tr>", panel)
    assert rows
    assert all(int(count) >= 1 for _, _, count in rows)
    assert 'id="served"' in panel
    assert "ok" in panel
    page = admin.get("/ui/serving").text
    assert 'hx-trigger="every 5s"' in page
    assert "lambda-notice" not in page


def test_serving_on_lambda_says_each_instance_sees_itself(ui_store: UiStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ml-api")
    app = create_app(
        settings_for(ui_store.store, AWS_REGION="eu-west-1", CLOUDWATCH_DASHBOARD="stack-eu-west-1")
    )
    with TestClient(app, follow_redirects=False) as client:
        login(client, "reader")
        page = client.get("/ui/serving").text
    assert "each instance sees only its own requests" in page
    assert (
        'href="https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1'
        '#dashboards/dashboard/stack-eu-west-1"'
    ) in page


def test_vendored_assets_match_their_manifest_and_keep_licences(anonymous: TestClient) -> None:
    import hashlib

    folder = ui.STATIC_DIR / "vendor"
    manifest = json.loads((folder / "vendor.json").read_text())
    assert set(manifest) == {"htmx.org", "uplot"}
    for spec in manifest.values():
        for name, digest in spec["files"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
        assert any(name.endswith("/LICENSE") for name in spec["files"])
    for path in (
        "vendor/htmx/htmx.min.js",
        "vendor/uplot/uPlot.iife.min.js",
        "ui.js",
        "ui.css",
        "vendor/uplot/LICENSE",
    ):
        answer = anonymous.get(f"/ui/static/{path}")
        assert answer.status_code == 200
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_chart_data_follows_a_run_that_logs_again(admin: TestClient, ui_store: UiStore) -> None:
    """The cached series is keyed by the run's latest point: new points are read, not stale."""
    logger = ui_store.store.logger
    run = logger.start_run("cache_check", run_name="live")
    run.log_metric("loss", 1.0, step=0)
    run.flush()
    url = f"/ui/histories?runs={run.run_id}&keys=loss"
    assert admin.get(url).json()["runs"][run.run_id]["loss"] == [[0], [1.0]]
    assert admin.get(url).json()["runs"][run.run_id]["loss"] == [[0], [1.0]]
    run.log_metric("loss", 0.5, step=1)
    run.end()
    assert admin.get(url).json()["runs"][run.run_id]["loss"] == [[0, 1], [1.0, 0.5]]
    # A key the run never logged is an empty series, not an error.
    other = admin.get(f"/ui/histories?runs={run.run_id}&keys=loss,never").json()
    assert other["runs"][run.run_id]["never"] == [[], []]


def test_ui_assets_are_one_metrics_label(anonymous: TestClient) -> None:
    assert anonymous.get("/ui/static/ui.js").status_code == 200
    metrics = anonymous.get("/metrics", headers={"X-API-Key": corpus.KEYS["reader"][0]}).text
    assert 'route="/ui/static"' in metrics
    assert 'route="/ui/static/ui.js"' not in metrics
