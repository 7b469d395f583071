"""docs/api_documentation.md is generated from the schema and must not go stale."""

from __future__ import annotations

from functions.api.apidoc import DOC_PATH, openapi_schema, render

DOC = DOC_PATH


def test_api_documentation_is_current() -> None:
    expected = render(openapi_schema())
    assert DOC.read_text() == expected, (
        "docs/api_documentation.md is stale: run `python -m functions.api.apidoc`"
    )


def test_documentation_covers_every_route_and_the_seed_request() -> None:
    text = DOC.read_text()
    schema = openapi_schema()
    for path, methods in schema["paths"].items():
        for method in methods:
            assert f"### {method.upper()} `{path}`" in text
    for field in ("player_id", "sessions_7d", "playtime_7d", "iap_count"):
        assert f"| `{field}` |" in text
