"""Write ``docs/api_documentation.md`` from the app's OpenAPI schema.

    python -m functions.api.apidoc            # rewrites docs/api_documentation.md

A test regenerates it and fails when the committed file is stale, so the document always says
what the code serves.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from functions.api.auth import OPEN, SCOPE_KEY

HEADER = """# API reference

Generated from the app's OpenAPI schema by `python -m functions.api.apidoc`; do not edit by hand
(a test fails when this file is stale). Interactive versions: `/docs` (Swagger UI) and `/redoc`.

Authentication: send your key in the `X-API-Key` header. Keys are configured as SHA-256 hashes
with scopes (`predict`, `read`, `admin`) in `API_KEYS`. Without a valid key every route but the
open ones answers 401; a key without the route's scope gets 403.

Errors always have this shape, with no traceback and without echoing the input:

```json
{"error": {"code": "not_found", "message": "model 'churn' has no version 9", "request_id": "..."}}
```
"""


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(schema.get("type", "object"))


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    options = schema.get("anyOf", [schema])
    for option in options:
        for key, label in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                           ("minLength", "min length"), ("maxLength", "max length"),
                           ("minItems", "min items"), ("maxItems", "max items"),
                           ("pattern", "pattern")):  # fmt: skip
            if key in option:
                value = option[key]
                parts.append(f"{label} `{value}`" if key == "pattern" else f"{label} {value}")
    if "default" in schema and schema["default"] is not None:
        parts.append(f"default {schema['default']}")
    return ", ".join(parts)


def render(schema: dict[str, Any]) -> str:
    lines = [HEADER]
    lines.append("## Endpoints\n")
    lines.append("| method | path | scope | summary |")
    lines.append("|---|---|---|---|")
    operations = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            operations.append((path, method, operation))
            scope = operation.get(SCOPE_KEY, "")
            shown = "none (open)" if scope == OPEN else f"`{scope}`"
            lines.append(
                f"| {method.upper()} | `{path}` | {shown} | {operation.get('summary', '')} |"
            )
    for path, method, operation in operations:
        lines.append(f"\n### {method.upper()} `{path}`\n")
        description = str(operation.get("description", "")).strip()
        if description:
            lines.append(description + "\n")
        scope = operation.get(SCOPE_KEY)
        lines.append("Scope: none (open)\n" if scope == OPEN else f"Scope: `{scope}`\n")
        parameters = operation.get("parameters", [])
        if parameters:
            lines.append("| parameter | in | type | required | constraints | description |")
            lines.append("|---|---|---|---|---|---|")
            for parameter in parameters:
                param_schema = parameter.get("schema", {})
                lines.append(
                    f"| `{parameter['name']}` | {parameter['in']} | {_type(param_schema)} | "
                    f"{'yes' if parameter.get('required') else 'no'} | "
                    f"{_constraints(param_schema)} | {parameter.get('description', '')} |"
                )
            lines.append("")
        body = operation.get("requestBody")
        if body:
            body_schema = body["content"]["application/json"]["schema"]
            lines.append(f"Request body: `{_type(body_schema)}` (JSON)\n")
        responses = operation.get("responses", {})
        codes = []
        for code, response in sorted(responses.items()):
            content = response.get("content", {})
            media: dict[str, Any] = next(iter(content.values()), {}) if content else {}
            shown = _type(media.get("schema", {})) if media.get("schema") else ""
            codes.append(f"{code}" + (f" (`{shown}`)" if shown and shown != "object" else ""))
        if codes:
            lines.append("Responses: " + ", ".join(codes) + "\n")
    lines.append("## Schemas\n")
    for name, model in sorted(schema.get("components", {}).get("schemas", {}).items()):
        if name in {"HTTPValidationError", "ValidationError"}:
            continue  # FastAPI's defaults; this API answers with its own error shape
        lines.append(f"### {name}\n")
        if model.get("description"):
            lines.append(str(model["description"]).strip() + "\n")
        properties = model.get("properties", {})
        if properties:
            required = set(model.get("required", []))
            lines.append("| field | type | required | constraints | description |")
            lines.append("|---|---|---|---|---|")
            for field, spec in properties.items():
                lines.append(
                    f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | "
                    f"{_constraints(spec)} | {spec.get('description', '')} |"
                )
            lines.append("")
        elif "enum" in model:
            lines.append("One of: " + ", ".join(f"`{value}`" for value in model["enum"]) + "\n")
    return "\n".join(lines).rstrip() + "\n"


def openapi_schema() -> dict[str, Any]:
    """The schema of an app serving churn and rag (as ``make run`` does), touching no store."""
    from functions.api.main import create_app
    from functions.api.settings import ApiSettings

    settings = ApiSettings(
        TRACKING_URI="sqlite:///:memory:", LOAD_MODELS_ON_START=False, API_KEYS="[]",
        SERVED_MODELS="churn,rag",
    )  # fmt: skip
    return create_app(settings).openapi()


DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "api_documentation.md"


def main() -> None:
    DOC_PATH.write_text(render(openapi_schema()))
    sys.stderr.write(f"wrote {DOC_PATH}\n")


if __name__ == "__main__":
    main()
