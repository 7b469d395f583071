"""/docs (Swagger UI) and /redoc (ReDoc), served with every asset they load by the app itself.

FastAPI's default pages load Swagger UI and ReDoc from a public CDN and its favicon from
FastAPI's site, so without internet access (or under a strict Content-Security-Policy) they render
nothing. Here the assets are vendored from npm (``static/docs/``, versions and SHA-256 in
``vendor.json``, written by ``tools/vendor_docs_assets.py``) and mounted at ``/docs/static``.

The pages are our own HTML rather than ``get_swagger_ui_html``/``get_redoc_html``: those write
an inline ``<script>`` (Swagger UI's initialisation) and an inline ``<style>`` (ReDoc's body
margin), which the policy in ``security_headers`` refuses. The initialisation lives in
``swagger-init.js`` and ``redoc-init.js`` instead, with the same settings as FastAPI's pages.

Every URL in the pages is relative. Behind an API Gateway REST API the browser sees
``/Prod/docs`` while the app sees ``/docs`` (Mangum sets no ``root_path``), so an absolute
``/docs/static/...`` would miss the stage; relative URLs resolve under whatever prefix the page
was reached at (uvicorn, ``--root-path`` proxies and API Gateway stages alike). For the same
reason swagger-init.js gives "Try it out" requests the page's prefix (the schema names no server).

Like FastAPI's own docs routes these are plain routes, not ``AuthRoute``s: they need no key
(the schema and the pages are public, exactly as before), and tests/api/test_auth.py checks that
they are the only routes without a declared scope.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from functions.api.security_headers import html_headers, new_nonce

STATIC_DIR = Path(__file__).resolve().parent / "static" / "docs"
STATIC_PATH = "/docs/static"
SWAGGER_PATH = "/docs"
REDOC_PATH = "/redoc"
#: The <style> elements ReDoc's bundle (2.5.4) injects when it loads, before redoc-init.js can
#: hand it the nonce: an empty one, then perfect-scrollbar's stylesheet (style-loader). Allowed
#: by hash, they can only ever be these exact texts. After a ReDoc upgrade the browser test
#: (tests/browser/) reports the new digests if they change ("a hash ('sha256-...')").
REDOC_STYLE_HASHES = (
    "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",  # "" (the element before its text)
    "sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc=",  # perfect-scrollbar's .ps rules
)
#: Assets may be cached for an hour, then revalidated (StaticFiles answers 304 by ETag).
ASSET_CACHE_CONTROL = "public, max-age=3600"

# The pages sit at the root, beside the schema, so these relative URLs resolve under any prefix.
_STATIC = STATIC_PATH.lstrip("/")

_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/svg+xml" href="{static}/favicon.svg">
<link rel="stylesheet" href="{static}/swagger-ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{static}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - ReDoc</title>
<link rel="icon" type="image/svg+xml" href="{static}/favicon.svg">
<link rel="stylesheet" href="{static}/docs.css">
</head>
<body>
<noscript>ReDoc needs JavaScript to show this documentation; see {openapi_url}.</noscript>
<div id="redoc" data-spec-url="{openapi_url}"></div>
<script src="{static}/redoc/redoc.standalone.js"></script>
<script src="{static}/redoc-init.js" nonce="{nonce}"></script>
</body>
</html>
"""


class DocsAssets(StaticFiles):
    """The vendored files, with a cache lifetime and no MIME sniffing."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.headers.get("content-type") == "application/octet-stream":
            # LICENSE and NOTICE have no suffix to guess from; they are text (and must stay text
            # for Mangum, which would otherwise base64 them).
            response.headers["content-type"] = "text/plain; charset=utf-8"
        if response.status_code in {200, 304}:
            response.headers["Cache-Control"] = ASSET_CACHE_CONTROL
        return response


def install(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to ``app`` (whose ``openapi_url`` must be set)."""
    if not app.openapi_url or not app.openapi_url.startswith("/"):
        raise ValueError("the docs pages need the app's schema at an absolute path")
    fields = {
        "title": html.escape(app.title),
        "static": _STATIC,
        "openapi_url": html.escape(app.openapi_url.lstrip("/")),
    }
    swagger_page = _SWAGGER_PAGE.format(**fields)
    headers = html_headers()

    async def swagger_ui(request: Request) -> HTMLResponse:
        return HTMLResponse(swagger_page, headers=headers)

    async def redoc(request: Request) -> HTMLResponse:
        # A fresh nonce per response: ReDoc's <style> elements carry it (redoc-init.js).
        nonce = new_nonce()
        page = _REDOC_PAGE.format(**fields, nonce=nonce)
        headers = html_headers(style_nonce=nonce, style_hashes=REDOC_STYLE_HASHES)
        return HTMLResponse(page, headers=headers)

    app.add_route(SWAGGER_PATH, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_route(REDOC_PATH, redoc, methods=["GET"], include_in_schema=False)
    app.mount(STATIC_PATH, DocsAssets(directory=STATIC_DIR), name="docs-static")
