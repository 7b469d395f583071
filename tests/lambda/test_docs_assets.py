"""/docs, /redoc and their assets through ``functions.api.main.handler``, as API Gateway sends them.

Mangum returns a body as text unless its content type is outside its text types, in which case
it base64-encodes it (``isBase64Encoded``). Our REST API declares no binary media types, so a
base64 body would reach the browser as base64 text: every docs asset must come back as text,
byte for byte, with no key.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.api import docs

from .support import LambdaContext, load_event, set_header

ASSETS = {
    "swagger-ui/swagger-ui-bundle.js": "text/javascript",
    "swagger-ui/swagger-ui.css": "text/css",
    "redoc/redoc.standalone.js": "text/javascript",
    "swagger-init.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
    "swagger-ui/LICENSE": "text/plain",
}


def _get(path: str, *, rest: bool) -> dict[str, Any]:
    """A keyless GET of ``path``: REST API (stage ``Prod``, path without it) or HTTP API v2."""
    if rest:
        event = load_event("rest_v1_health")
        event["resource"] = "/{proxy+}"
        event["path"] = path
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        event["requestContext"]["resourcePath"] = "/{proxy+}"
        event["requestContext"]["path"] = f"/Prod{path}"
    else:
        event = load_event("http_v2_health")
        event["rawPath"] = path
        event["routeKey"] = "$default"
        event["requestContext"]["http"]["path"] = path
        event["requestContext"]["routeKey"] = "$default"
    set_header(event, "X-API-Key", None)
    set_header(event, "Accept", "*/*")
    return event


@pytest.mark.parametrize("rest", [True, False], ids=["rest_v1", "http_v2"])
@pytest.mark.parametrize("asset", sorted(ASSETS))
def test_the_handler_serves_each_asset_as_text(
    handler: Any, context: LambdaContext, asset: str, rest: bool
) -> None:
    raw = handler(_get(f"{docs.STATIC_PATH}/{asset}", rest=rest), context)

    headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
    assert raw["statusCode"] == 200, raw.get("body", "")[:200]
    assert headers["content-type"].split(";")[0] == ASSETS[asset]
    assert raw["isBase64Encoded"] is False
    assert raw["body"].encode() == (docs.STATIC_DIR / asset).read_bytes()


@pytest.mark.parametrize("page", [docs.SWAGGER_PATH, docs.REDOC_PATH])
def test_the_handler_serves_the_pages_with_the_policy(
    handler: Any, context: LambdaContext, page: str
) -> None:
    raw = handler(_get(page, rest=True), context)

    headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
    assert raw["statusCode"] == 200
    assert raw["isBase64Encoded"] is False
    assert headers["content-security-policy"].startswith("default-src 'self'; script-src 'self';")
    # Relative asset URLs: the browser is at /Prod/docs, the app sees /docs.
    assert 'src="docs/static/' in raw["body"]
    assert 'src="/' not in raw["body"]
