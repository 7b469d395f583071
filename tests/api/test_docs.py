"""The docs pages and their assets over HTTP: the policy, no inline code, relative URLs, and
vendored files that match vendor.json. (tests/browser/ renders them in Chromium.)"""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from functions.api import docs
from functions.api.security_headers import content_security_policy
from tests.api.conftest import READER

#: The web UI's policy, word for word: the docs pages get exactly this (plus ReDoc's styles).
UI_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
MANIFEST = json.loads((docs.STATIC_DIR / "vendor.json").read_text())


class _Page(HTMLParser):
    """The tags of a page, with their attributes, and any inline script or style text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag

    def handle_data(self, data: str) -> None:
        if self._open in {"script", "style"} and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def urls(self) -> list[str]:
        names = {"src", "href", "data-openapi-url", "data-spec-url"}
        return [v for _, attrs in self.tags for k, v in attrs.items() if k in names and v]


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def test_the_policy_is_the_web_uis() -> None:
    assert content_security_policy() == UI_POLICY
    assert "unsafe" not in content_security_policy(style_nonce="n", style_hashes=("sha256-x",))


@pytest.mark.parametrize("path", [docs.SWAGGER_PATH, docs.REDOC_PATH])
def test_pages_have_no_inline_code_and_only_relative_urls(ro_client: TestClient, path: str) -> None:
    response = ro_client.get(path)

    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    page = _parse(response.text)
    assert page.inline == []
    assert not any(tag == "style" or "style" in attrs for tag, attrs in page.tags)
    scripts = [attrs["src"] for tag, attrs in page.tags if tag == "script"]
    assert scripts
    assert all(scripts)
    # Behind an API Gateway stage the browser's URL has a prefix the app never sees.
    for url in page.urls():
        assert urljoin("https://api.example/Prod/docs", url).startswith("https://api.example/Prod/")
        assert ro_client.get(urljoin(path, url)).status_code == 200, url


def test_swagger_ui_page_has_the_bare_policy(ro_client: TestClient) -> None:
    assert ro_client.get("/docs").headers["content-security-policy"] == UI_POLICY


def test_redoc_page_allows_its_styles_by_a_fresh_nonce(ro_client: TestClient) -> None:
    nonces = []
    for _ in range(2):
        response = ro_client.get("/redoc")
        tags = _parse(response.text).tags
        nonce = next(attrs["nonce"] for tag, attrs in tags if tag == "script" and "nonce" in attrs)
        assert nonce
        assert response.headers["content-security-policy"] == content_security_policy(
            style_nonce=nonce, style_hashes=docs.REDOC_STYLE_HASHES
        )
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", nonces[0])


def test_assets_are_cached_and_revalidated(ro_client: TestClient) -> None:
    first = ro_client.get(f"{docs.STATIC_PATH}/swagger-ui/swagger-ui-bundle.js")

    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/javascript")
    assert first.headers["cache-control"] == docs.ASSET_CACHE_CONTROL
    assert first.headers["x-content-type-options"] == "nosniff"
    again = ro_client.get(
        f"{docs.STATIC_PATH}/swagger-ui/swagger-ui-bundle.js",
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304
    assert ro_client.get(f"{docs.STATIC_PATH}/../main.py").status_code == 404
    assert ro_client.get(f"{docs.STATIC_PATH}/swagger-ui/missing.js").status_code == 404
    # One metrics label for every asset path (a mount has no route template).
    text = ro_client.get("/metrics", headers=READER).text
    assert f'route="{docs.STATIC_PATH}",status="304"' in text
    assert f'route="{docs.STATIC_PATH}",status="404"' in text
    assert "swagger-ui-bundle.js" not in text


def test_vendored_files_match_the_manifest_and_keep_their_licences() -> None:
    assert {name: spec["version"] for name, spec in MANIFEST.items()} == {
        "swagger-ui-dist": "5.35.0",
        "redoc": "2.5.4",
    }
    for spec in MANIFEST.values():
        for relative, digest in spec["files"].items():
            assert hashlib.sha256((docs.STATIC_DIR / relative).read_bytes()).hexdigest() == digest
        folders = {relative.split("/")[0] for relative in spec["files"]}
        for folder in folders:
            assert f"{folder}/LICENSE" in spec["files"]
            bundles = [f for f in spec["files"] if f.endswith(".js")]
            assert all(f"{bundle}.LICENSE.txt" in spec["files"] for bundle in bundles)
    vendored = {f for spec in MANIFEST.values() for f in spec["files"]}
    ours = {"favicon.svg", "swagger-init.js", "redoc-init.js", "docs.css", "vendor.json"}
    on_disk = {
        p.relative_to(docs.STATIC_DIR).as_posix() for p in docs.STATIC_DIR.rglob("*") if p.is_file()
    }
    assert on_disk == vendored | ours  # nothing unaccounted for ships in the image


def test_no_asset_names_another_origin_it_would_load() -> None:
    """The patched ReDoc no longer shows Redocly's logo from its CDN; nothing else loads one."""
    redoc = (docs.STATIC_DIR / "redoc" / "redoc.standalone.js").read_text()
    assert "cdn.redoc.ly" not in redoc
    assert MANIFEST["redoc"]["patched"]["redoc/redoc.standalone.js"]["patches"]
    for name in ("favicon.svg", "swagger-init.js", "redoc-init.js", "docs.css"):
        text = (docs.STATIC_DIR / name).read_text()
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, never fetched
        assert not re.search(r"https?:", text), name
