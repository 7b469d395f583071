"""Limits at scale and at the HTTP edge (issue 7, item 11).

- A run with 10,000 params and a 50,000-step metric history, logged through the SDK, reads back
  whole: ``get_run`` has every param, the history comes back page by page in step order (also
  over HTTP on the SQLite app), and on DynamoDB no item is larger than 350 KB, sized by
  DynamoDB's documented rules from a boto3 scan of every table.
- The worst single items (longest names, values at their limits in 4-byte characters, many
  dataset and artifact records, model and version tags that keep growing) stay under that bound;
  what would break it is refused with ``InvalidInput`` naming the limit.
- Every POST route answers 413 naming the limit to a body one byte over it (with and without a
  Content-Length); too many batch rows, over-long query strings and over-long path names are 422
  naming the limit.

The moto server backend is left out of the big run: there it took over 60 s (moto's Query
re-sorts the whole partition for every page of history; see the report in the test output).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from functions.api.main import create_app
from functions.api.settings import ApiSettings
from tests.api.conftest import ADMIN, SEED_REQUEST, key_config
from tracking import ExperimentLogger, InvalidInput, ModelRegistry
from tracking.entities import (
    AliasChange,
    Artifact,
    Dataset,
    FeatureSpec,
    Flavor,
    HistoryAction,
    ModelVersion,
)
from tracking.registry import MAX_METADATA_BYTES
from tracking.stores.dynamodb.history import CHUNK_STEPS
from tracking.stores.dynamodb.writes import item_size
from tracking.stores.ports.registry import MAX_TAG_BYTES
from tracking.validation import MAX_PARAM_VALUE, MAX_TAG_VALUE

PARAMS = 10_000
STEPS = 50_000
PAGE = 1000
#: No item may be larger than this (DynamoDB refuses items over 400 KB).
ITEM_BOUND = 350 * 1024
#: A character that takes 4 bytes in UTF-8: values at their limit in these are the largest.
WIDE = "\U0001d11e"
LONG_NAME = "n" * 128


# -- DynamoDB's item size: the store's own ``item_size``, pinned to the documented rules ---------
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html


def test_item_size_rules() -> None:
    assert item_size({"pk": {"S": "abc"}}) == 5
    assert item_size({"n": {"N": "12345"}}) == 1 + 4  # 5 digits: 3 bytes + 1
    assert item_size({"n": {"N": "-0.00100"}}) == 1 + 2
    assert item_size({"s": {"S": WIDE}}) == 1 + 4
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size({"l": {"L": [{"N": "1"}, {"N": "2"}]}}) == 1 + 3 + 2 * (1 + 2)


@dataclass
class Scan:
    tables: dict[str, int]
    biggest: int
    biggest_key: dict[str, Any]

    @property
    def items(self) -> int:
        return sum(self.tables.values())


def scan_items(prefix: str) -> Scan:
    """Every item of the store's tables (a Scan: allowed in a test, never on a request path)."""
    import boto3

    client = boto3.client("dynamodb")
    tables: dict[str, int] = {}
    biggest, biggest_key = 0, {}
    for table in client.list_tables()["TableNames"]:
        if not table.startswith(f"{prefix}-"):
            continue
        tables[table] = 0
        for page in client.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                tables[table] += 1
                size = item_size(item)
                if size > biggest:
                    key: dict[str, Any] = {
                        name: item[name] for name in ("pk", "sk", "step") if name in item
                    }
                    biggest, biggest_key = size, key
    return Scan(tables, biggest, biggest_key)


def _skip_moto_table_backups(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto deep-copies every table before each transaction (to restore it if the transaction is
    # cancelled): with 10,000 items that is quadratic and took over 10 GB of memory. No
    # transaction here is cancelled, so the backup is never used.
    import moto.dynamodb.models as moto_models

    monkeypatch.setattr(moto_models, "copy", SimpleNamespace(deepcopy=lambda value: value))


@dataclass
class Tracking:
    name: str
    logger: ExperimentLogger
    tracking_uri: str
    artifact_uri: str
    prefix: str | None


@pytest.fixture(params=["sqlite", "moto"])
def tracking(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tracking]:
    name: str = request.param
    if name == "sqlite":
        uris = (f"sqlite:///{tmp_path / 'tracking.db'}", f"file://{tmp_path / 'artifacts'}")
        logger = ExperimentLogger(*uris)
        logger.metadata.initialize()
        yield Tracking(name, logger, *uris, prefix=None)
        logger.close()
        return
    from moto import mock_aws

    _skip_moto_table_backups(monkeypatch)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    prefix = f"limits{uuid.uuid4().hex[:8]}"
    uris = (f"dynamodb://{prefix}", f"s3://bucket-{prefix}/artifacts")
    with mock_aws():
        logger = ExperimentLogger(*uris)
        logger.metadata.initialize()
        logger.artifacts.initialize()
        yield Tracking(name, logger, *uris, prefix=prefix)
        logger.close()


# -- the big run -----------------------------------------------------------------------------


def _value(step: int) -> float:
    return 1.0 / (step + 1)


@pytest.mark.slow
def test_a_run_with_10000_params_and_50000_steps(tracking: Tracking, tmp_path: Path) -> None:
    logger = tracking.logger
    params = {f"param_{i:05d}": f"{i:05d}" + "v" * 245 for i in range(PARAMS)}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with logger.start_run("big", run_name="big-run") as run:
        run.log_params(params)
        timings["params"] = time.perf_counter() - started
        for step in range(STEPS):
            run.log_metric("loss", _value(step), step=step)
    timings["logged"] = time.perf_counter() - started

    mark = time.perf_counter()
    stored = logger.get_run(run.run_id)
    timings["get_run"] = time.perf_counter() - mark
    assert stored.params == params
    assert stored.metrics["loss"].step == STEPS - 1

    mark = time.perf_counter()
    steps: list[int] = []
    token: str | None = None
    pages = 0
    while True:
        page = logger.metadata.get_metric_history(run.run_id, "loss", PAGE, token)
        pages += 1
        assert len(page.items) <= PAGE
        steps.extend(point.step for point in page.items)
        assert all(point.value == _value(point.step) for point in page.items)
        if page.next_token is None:
            break
        token = page.next_token
    timings["history"] = time.perf_counter() - mark
    assert steps == list(range(STEPS))
    assert pages == STEPS // PAGE

    if tracking.name == "sqlite":
        mark = time.perf_counter()
        _read_over_http(tracking, run.run_id, params, tmp_path)
        timings["http"] = time.perf_counter() - mark
    figures = {key: round(value, 2) for key, value in timings.items()}
    print(f"\n[big run] {tracking.name}: {PARAMS} params, {STEPS} steps, seconds {figures}")

    if tracking.prefix is not None:
        scan = scan_items(tracking.prefix)
        print(
            f"[big run] {tracking.name}: {scan.items} items in {scan.tables}; largest "
            f"{scan.biggest} bytes ({scan.biggest_key})"
        )
        # One item per param, one per chunk of CHUNK_STEPS points; the run item is bounded by
        # its summary's budget (this run overflowed it) and every other item is small.
        assert scan.items >= PARAMS + STEPS // CHUNK_STEPS
        assert scan.biggest < ITEM_BOUND


def _read_over_http(
    tracking: Tracking, run_id: str, params: Mapping[str, str], tmp_path: Path
) -> None:
    settings = ApiSettings(
        TRACKING_URI=tracking.tracking_uri,
        ARTIFACT_URI=tracking.artifact_uri,
        API_KEYS=key_config(),
        MODEL_CACHE_DIR=str(tmp_path / "cache"),
        LOAD_MODELS_ON_START=False,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        run = client.get(f"/runs/{run_id}", headers=ADMIN)
        assert run.status_code == 200, run.text
        assert run.json()["params"] == params
        steps: list[int] = []
        query: dict[str, Any] = {"max_results": PAGE}
        while True:
            response = client.get(f"/runs/{run_id}/metrics/loss", params=query, headers=ADMIN)
            assert response.status_code == 200, response.text
            body = response.json()
            assert len(body["items"]) <= PAGE
            steps.extend(point["step"] for point in body["items"])
            if body["next_token"] is None:
                break
            query["page_token"] = body["next_token"]
        assert steps == list(range(STEPS))


# -- the worst single items ------------------------------------------------------------------


def test_worst_single_items_stay_under_the_bound(tracking: Tracking) -> None:
    """Names at 128 characters and values at their limits, in 4-byte characters."""
    logger = tracking.logger
    store = logger.metadata
    with logger.start_run(
        LONG_NAME, run_name=LONG_NAME, tags={LONG_NAME: WIDE * MAX_TAG_VALUE}
    ) as run:
        run.log_params({LONG_NAME: WIDE * MAX_PARAM_VALUE})
        run.set_tags({"t" * 127 + "2": WIDE * MAX_TAG_VALUE})
        run.log_metric(LONG_NAME, 1e-300, step=10**15)
    before = scan_items(tracking.prefix) if tracking.prefix else None
    # Dataset and artifact records are items of their own, never a list on the run item.
    for i in range(100):
        store.log_dataset(
            run.run_id,
            Dataset(name=f"d{i:03d}" + "n" * 124, uri="s3://b/" + "k" * 1017, digest="ab" * 32,
                    digest_algorithm="sha256", size=10**12, version_id="v" * 1024, logged_at=1),
        )  # fmt: skip
        store.log_artifact(
            run.run_id,
            Artifact(name=f"a{i:03d}" + "n" * 124, uri="s3://b/" + "k" * 1017, sha256="cd" * 32,
                     size=10**12, created_at=1),
        )  # fmt: skip
    stored = logger.get_run(run.run_id)
    assert stored.params[LONG_NAME] == WIDE * MAX_PARAM_VALUE
    assert stored.tags[LONG_NAME] == WIDE * MAX_TAG_VALUE
    assert (len(stored.datasets), len(stored.artifacts)) == (100, 100)
    if tracking.prefix is None or before is None:
        return
    after = scan_items(tracking.prefix)
    print(
        f"\n[worst items] {before.items} -> {after.items} items; largest {after.biggest} bytes "
        f"({after.biggest_key})"
    )
    assert after.items == before.items + 200
    assert after.biggest == before.biggest < ITEM_BOUND


def _version(name: str, **changes: Any) -> tuple[ModelVersion, AliasChange]:
    version = ModelVersion(
        name=name, version=1, run_id="r" * 32, experiment_name="e", artifact_name="model",
        artifact_uri="s3://b/model.json", sha256="ef" * 32, size=1, flavor=Flavor.XGBOOST,
        signature=[FeatureSpec(name="x", type="float")], created_at=1, actor="test",
        **changes,
    )  # fmt: skip
    change = AliasChange(
        name=name, action=HistoryAction.REGISTER, to_version=1, actor="test", timestamp=1,
        change_id=uuid.uuid4().hex,
    )  # fmt: skip
    return version, change


def _grow(update: Callable[[int], object]) -> int:
    """Call ``update(0), update(1), ...`` until it is refused; return how many were accepted."""
    accepted = 0
    while accepted < 100:
        try:
            update(accepted)
        except InvalidInput:
            break
        accepted += 1
    # Refused again, naming the limit: the refused update wrote nothing.
    with pytest.raises(InvalidInput, match=f"the limit is {MAX_TAG_BYTES} bytes"):
        update(accepted)
    return accepted


def test_model_and_version_tags_cannot_grow_past_the_bound(tracking: Tracking) -> None:
    """Tags merge into one record per model and version: every backend stops them at
    ``MAX_TAG_BYTES``, which keeps a DynamoDB item far from its 400 KB limit."""
    store: Any = tracking.logger.metadata
    version, change = _version("m")
    store.create_model_version(version, expected_latest=0, change=change)
    tag_value = WIDE * MAX_TAG_VALUE  # 24,000 bytes each

    def on_model(i: int) -> object:
        return store.update_model("m", tags={f"k{i:03d}": tag_value})

    def on_version(i: int) -> object:
        return store.update_version("m", 1, tags={f"k{i:03d}": tag_value})

    for update in (on_model, on_version):
        accepted = _grow(update)
        assert accepted == MAX_TAG_BYTES // (len(tag_value.encode()) + 4), accepted
    model = store.get_model("m")
    assert len(model.tags) == len(store.get_version("m", 1).tags) == accepted
    # Replacing a value that is already there never grows the record: still accepted.
    store.update_version("m", 1, tags={"k000": "small"})
    # A version whose tags are too large from the start is refused, and nothing is written.
    wide, change = _version("wide", tags={f"k{i}": tag_value for i in range(accepted + 1)})
    with pytest.raises(InvalidInput, match=f"the limit is {MAX_TAG_BYTES} bytes"):
        store.create_model_version(wide, expected_latest=0, change=change)
    assert [m.name for m in store.list_models().items] == ["m"]
    if tracking.prefix is not None:
        scan = scan_items(tracking.prefix)
        print(
            f"\n[registry tags] {accepted} tags of 24,000 bytes; largest item {scan.biggest} bytes"
        )
        assert scan.biggest < ITEM_BOUND


@pytest.mark.parametrize("tracking", ["moto"], indirect=True)
def test_a_version_item_past_the_dynamodb_bound_is_refused(tracking: Tracking) -> None:
    """The store's own backstop, for what the registry's bounds leave (a version's metadata,
    signature and description together): bad input, never a 503 from DynamoDB."""
    assert tracking.prefix is not None
    store: Any = tracking.logger.metadata
    huge, change = _version("huge", metadata={"notes": "x" * ITEM_BOUND})
    with pytest.raises(InvalidInput, match="the limit is 358400 bytes"):
        store.create_model_version(huge, expected_latest=0, change=change)
    assert store.list_models().items == []


def test_registry_metadata_is_bounded_json(tracking: Tracking) -> None:
    """The SDK refuses metadata that is too large or not JSON before anything is written."""
    registry = ModelRegistry(
        store=tracking.logger.metadata, artifact_store=tracking.logger.artifacts
    )
    with pytest.raises(InvalidInput, match=f"the limit is {MAX_METADATA_BYTES} bytes"):
        registry.register_model(
            "m", "r" * 32, "model", metadata={"notes": "x" * MAX_METADATA_BYTES}
        )
    for bad in ({"x": float("nan")}, {"x": object()}, {"x": {1, 2}}):
        with pytest.raises(InvalidInput, match="metadata must be JSON"):
            registry.register_model("m", "r" * 32, "model", metadata=bad)
    assert tracking.logger.metadata.list_models().items == []


# -- HTTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, TestClient]]:
    """The app with its default limits on an empty SQLite store (no model loaded)."""
    folder = tmp_path_factory.mktemp("limits-api")
    settings = ApiSettings(
        TRACKING_URI=f"sqlite:///{folder / 'tracking.db'}",
        ARTIFACT_URI=f"file://{folder / 'artifacts'}",
        API_KEYS=key_config(),
        MODEL_CACHE_DIR=str(folder / "cache"),
        LOAD_MODELS_ON_START=False,
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client


@dataclass
class Endpoint:
    path: str  # the effective template, prefix included
    route: APIRoute

    @property
    def path_params(self) -> list[str]:
        return [param.name for param in self.route.dependant.path_params]


def _routes(app: FastAPI, method: str) -> list[Endpoint]:
    """The app's API routes answering ``method`` (included routers resolved, as FastAPI does)."""
    return [
        Endpoint(str(context.path), context.original_route)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and method in (context.methods or ())
        # The web UI's pages answer HTML and are held to their own limits (tests/ui/); the
        # hidden /predict/{name} routes only answer 404 for names not served.
        and not str(context.path).startswith("/ui")
        and context.original_route.include_in_schema
    ]


def _concrete(endpoint: Endpoint, **values: str) -> str:
    path = endpoint.path
    for name in endpoint.path_params:
        default = "1" if name == "version" else "churn"
        path = path.replace(f"{{{name}}}", values.get(name, default))
    return path


def _body_of(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    return b'{"x": "' + b"a" * (size - 9) + b'"}'


def test_body_of_is_exact() -> None:
    assert len(_body_of(1000)) == 1000


def _assert_error(response: Any, status: int, *named: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["request_id"] == response.headers["x-request-id"]
    for text in named:
        assert text in error["message"], (text, error["message"])


def test_every_post_route_refuses_a_body_over_its_limit(api: tuple[FastAPI, TestClient]) -> None:
    app, client = api
    settings: ApiSettings = app.state.settings
    posts = _routes(app, "POST")
    assert {route.path for route in posts} >= {
        "/predict/churn",
        "/predict/churn/batch",
        "/models/{name}/versions/{version}/promote",
        "/models/{name}/rollback",
    }
    for route in posts:
        path = _concrete(route)
        limit = (
            settings.max_batch_body_bytes if path.endswith("/batch") else settings.max_body_bytes
        )
        headers = ADMIN | {"content-type": "application/json"}
        over = _body_of(limit + 1)
        sized = client.post(path, content=over, headers=headers)
        _assert_error(sized, 413, f"larger than {limit} bytes")
        assert sized.json()["error"]["code"] == "payload_too_large"
        # Streamed without a Content-Length (chunked): counted as it arrives.
        chunks = [over[start : start + 65536] for start in range(0, len(over), 65536)]
        streamed = client.post(path, content=iter(chunks), headers=headers)
        _assert_error(streamed, 413, f"larger than {limit} bytes")
        # A body of exactly the limit passes the size check (then fails validation: 422).
        at_limit = client.post(path, content=_body_of(limit), headers=headers)
        assert at_limit.status_code == 422, (path, at_limit.text)
        at_limit_streamed = client.post(path, content=iter([_body_of(limit)]), headers=headers)
        assert at_limit_streamed.status_code == 422, (path, at_limit_streamed.text)


def test_batch_rows_over_the_default_limit_are_422(api: tuple[FastAPI, TestClient]) -> None:
    app, client = api
    rows = app.state.settings.max_batch_rows
    body = {"rows": [SEED_REQUEST | {"player_id": f"p{i}"} for i in range(rows + 1)]}
    _assert_error(
        client.post("/predict/churn/batch", json=body, headers=ADMIN),
        422,
        f"at most {rows} rows",
    )
    # At the limit the rows are accepted (then 503: this app has no model loaded).
    body["rows"] = body["rows"][:rows]
    assert client.post("/predict/churn/batch", json=body, headers=ADMIN).status_code == 503


def test_over_long_query_strings_are_422(api: tuple[FastAPI, TestClient]) -> None:
    app, client = api
    app.state.logger.metadata.get_or_create_experiment("churn")
    runs = "/experiments/churn/runs"
    cases: list[tuple[str, dict[str, Any], str]] = [
        (runs, {"filter": "x" * 4001}, "4000 characters"),
        (runs, {"order_by": ["metrics.auc DESC"] * 11}, "10 items"),
        (runs, {"page_token": "t" * 2049}, "2048 characters"),
        (runs, {"max_results": 1001}, "1000"),
        ("/experiments", {"page_token": "t" * 2049}, "2048 characters"),
        ("/models", {"max_results": 1001}, "1000"),
        ("/runs/r/metrics/loss", {"max_results": 1001}, "1000"),
    ]
    for path, query, named in cases:
        _assert_error(client.get(path, params=query, headers=ADMIN), 422, named)
    # At the limits the query is accepted (the filter is then parsed: 422 for its grammar).
    ok = client.get(runs, params={"order_by": ["metrics.auc DESC"] * 10}, headers=ADMIN)
    assert ok.status_code == 200, ok.text


def test_over_long_names_in_paths_are_422(api: tuple[FastAPI, TestClient]) -> None:
    app, client = api
    checked = 0
    for method in ("GET", "POST"):
        for route in _routes(app, method):
            names = [name for name in route.path_params if name != "version"]
            for name in names:
                path = _concrete(route, **{name: "n" * 129})
                response = client.request(method, path, headers=ADMIN, json={"to": "staging"})
                _assert_error(response, 422, "128")
                checked += 1
            if "version" in route.path_params:
                path = _concrete(route, version=str(10**9 + 1))
                response = client.request(method, path, headers=ADMIN, json={"to": "staging"})
                _assert_error(response, 422, "1000000000")
                checked += 1
    print(f"\n[path names] {checked} over-long path parameters refused")
    assert checked >= 8
