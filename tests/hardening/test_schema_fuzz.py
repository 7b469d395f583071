"""Schema fuzzing: schemathesis against the app's own OpenAPI schema, in process (ASGI).

Every operation with a parameter or a body gets at least ``EXAMPLES`` generated cases (positive
and negative data generation modes mixed by schemathesis) plus schemathesis' explicit and
coverage cases; the three without (/health, /ready, /metrics) are exhausted after a few. All are
sent with an admin key to an app on an embedded store that holds a trained, promoted churn model
(the experiment ``churn`` exists). Positive cases mostly get the seeded path parameters (model
``churn``, versions 1 and 2, the run's id and one of its metrics) so that they reach the
business logic rather than a 404.

Checks: error hygiene on every body (``tests/hygiene.py``), every schemathesis check (no 5xx,
status codes, content types, headers and bodies as the schema declares, invalid input rejected),
with ``positive_data_acceptance`` replaced by
``accepts_valid_data`` below; hypothesis is derandomized, so CI sees the same cases
on every run. The counts are printed per operation (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case, CheckContext, GenerationMode
from schemathesis.core.transport import Response
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from functions.api.apidoc import openapi_schema
from functions.api.main import create_app
from tests.api.conftest import ADMIN, make_settings, new_store
from tests.hygiene import check_body, names_from_app

#: Generated cases per operation (hypothesis' ``max_examples``), both modes together.
EXAMPLES = 200


class _LateApp:
    """The ASGI app under test, bound once the module's store is trained.

    The schema is built at import (so pytest can parametrize by operation and xdist can spread
    the operations), but the app needs a trained model, which belongs in a fixture.
    """

    target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.target is None:  # pragma: no cover - only reached if the fixture did not run
            raise RuntimeError("the app under test is not bound yet")
        await self.target(scope, receive, send)


APP = _LateApp()
# The schema of an app built with defaults: the same document /openapi.json serves.
RAW_SCHEMA = openapi_schema()
schema = schemathesis.openapi.from_dict(RAW_SCHEMA)
#: Operations with no parameter and no body: hypothesis exhausts them after a few cases.
FIXED_OPERATIONS = {
    f"{method.upper()} {path}"
    for path, methods in RAW_SCHEMA["paths"].items()
    for method, operation in methods.items()
    if not operation.get("parameters") and not operation.get("requestBody")
}
schema.app = APP
# The admin key is sent with every case (below), so schemathesis neither generates nor drops it:
# a dropped key would make a case "negative" that the re-added key then lets through. Missing,
# wrong and under-scoped keys on every route are tests/api/test_auth.py's subject.
schema.config.generation.update(with_security_parameters=False)


#: Positive requests the API rejects with 422 by design, although the schema cannot say so:
#: opaque page tokens and the filter / order-by language are free strings in the schema, and the
#: two optional pins of /predict (``alias`` and ``version``) exclude each other; so do an
#: outcome's ``request_id`` and ``key``, and a report's ``since`` has bounds. An
#: ``Idempotency-Key`` is a free string too, and generated cases reuse one with other bodies. A
#: traffic policy's weights must sum to 100, a rule JSON Schema cannot state, and a metric's
#: history is asked for as a chart (``max_points``) or by pages (``max_results``).
def _semantic_422(case: Case) -> bool:
    query = case.query or {}
    if {"page_token", "filter", "order_by"} & set(query):
        return True
    if "idempotency-key" in {name.lower() for name in case.headers or {}}:
        return True
    if "since" in query or case.path.startswith("/feedback/"):
        # A window of 0 or over 31 days; an outcome naming both (or neither) of request_id
        # and key, or more outcomes than FEEDBACK_MAX_ITEMS.
        return True
    if case.method.upper() == "PUT" and case.path.endswith("/traffic"):
        return True
    if {"max_points", "max_results"} <= set(query):  # a chart or a page of points, not both
        return True
    if any(isinstance(value, float) for value in query.values()):
        return True  # 2.0 is an integer to JSON Schema; a query integer is digits only here
    if case.path == "/metric-histories":
        return True  # each comma-separated run id and key is a name: not a rule for the string
    return case.path.startswith("/predict/") and {"alias", "version"} <= set(query)


def accepts_valid_data(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """``positive_data_acceptance``, except for the semantic 422s above."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code == 422 and _semantic_422(case):
        body = response.json()
        assert body["error"]["code"] == "invalid_input", body
        return None
    if response.status_code < 400 or response.status_code in {401, 403, 404, 409}:
        return None
    raise RejectedPositiveData(
        operation=case.operation.label,
        message=f"valid data should have been accepted, got {response.status_code}",
        status_code=response.status_code,
        allowed_statuses=["2xx", "401", "403", "404", "409"],
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A trained churn model in production, a second version, and the app bound to them."""
    store = new_store(tmp_path_factory.mktemp("fuzz"))
    result = store.train(promote="production")
    run_id = result.run_id
    store.registry.register_model("churn", run_id=run_id, artifact="model")
    metric = sorted(store.logger.get_run(run_id).metrics)[0]
    APP.target = create_app(make_settings(store))
    try:
        yield {"name": "churn", "run_id": run_id, "key": metric}
    finally:
        APP.target = None


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    """Counts of one operation's cases by mode and status; checked after hypothesis is done."""
    counts: Counter[str] = Counter()
    yield counts
    label = request.node.name.partition("[")[2].rstrip("]")
    print(f"\n[fuzz {label}] cases={counts['cases']} server_errors={counts['server_errors']} "
          f"{json.dumps(dict(sorted(counts.items())))}")  # fmt: skip
    assert counts["server_errors"] == 0
    assert counts["cases"] >= (1 if label in FIXED_OPERATIONS else EXAMPLES), counts
    if label not in FIXED_OPERATIONS:
        assert counts["positive"], counts
        assert counts["negative"], counts


def _seed_path(case: Case, seeded: dict[str, Any]) -> None:
    """Point most positive cases at the seeded model, version, run and metric."""
    meta = case.meta
    params = case.path_parameters
    if meta is None or not params or not meta.generation.mode.is_positive:
        return
    # A deterministic three in four, decided by the generated values themselves.
    digest = zlib.crc32(json.dumps(params, sort_keys=True, default=str).encode())
    if digest % 4 == 0:
        return
    values = {
        "name": seeded["name"],
        "version": 1 + digest % 2,
        "run_id": seeded["run_id"],
        "key": seeded["key"],
    }
    case.path_parameters = {name: values.get(name, value) for name, value in params.items()}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # Shrinking a failure can take minutes; the failing case is reported unshrunk instead.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_schema_fuzz(case: Case, seeded: dict[str, Any], tally: Counter[str]) -> None:
    _seed_path(case, seeded)
    mode = case.meta.generation.mode if case.meta else GenerationMode.POSITIVE
    response = case.call_and_validate(
        headers=ADMIN,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[accepts_valid_data],
    )
    check_body(response.content, names_from_app(APP.target))
    tally["cases"] += 1
    tally["hygienic_bodies"] += 1
    tally[f"{mode.value}"] += 1
    tally[f"status_{response.status_code}"] += 1
    if response.status_code >= 500:
        tally["server_errors"] += 1


def test_the_fuzzed_schema_has_every_route() -> None:
    """Every operation of the app's routes is in the schema that is fuzzed (none left out)."""
    labels = {f"{method.upper()} {path}" for path, methods in RAW_SCHEMA["paths"].items()
              for method in methods}  # fmt: skip
    assert len(labels) >= 15, labels
    assert {"POST /predict/churn", "POST /predict/churn/batch",
            "POST /models/{name}/versions/{version}/promote"} <= labels  # fmt: skip
    assert {"GET /health", "GET /ready", "GET /metrics"} == FIXED_OPERATIONS


# -- what the fuzzing found, pinned -------------------------------------------------------------


def test_a_body_that_is_not_utf8_is_422(seeded: dict[str, Any]) -> None:
    """Found: FastAPI answered an undocumented 400 to a JSON body that is not UTF-8."""
    client = TestClient(APP.target)
    headers = {**ADMIN, "Content-Type": "application/json"}
    for path in ("/models/churn/rollback", "/models/churn/versions/1/promote", "/predict/churn"):
        response = client.post(path, content=b"l\xff\xfe", headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize(
    ("value", "status"), [(True, 422), (False, 422), ("3", 422), ("nan", 422), (3.0, 200), (3, 200)]
)
def test_booleans_and_strings_are_not_numbers(
    seeded: dict[str, Any], value: object, status: int
) -> None:
    """Found: lax parsing read ``true`` as 1 and ``"3"`` as 3 in the churn features."""
    client = TestClient(APP.target)
    row = {"player_id": "p_1", "sessions_7d": 4, "playtime_7d": 9.5, "iap_count": 0}
    single = client.post("/predict/churn", json={**row, "sessions_prev_7d": value}, headers=ADMIN)
    assert single.status_code == status, single.text
    batch = client.post(
        "/predict/churn/batch", json={"rows": [{**row, "playtime_7d": value}]}, headers=ADMIN
    )
    assert batch.status_code == status, batch.text
