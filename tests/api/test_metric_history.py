"""``GET /runs/{run_id}/metrics/{key}`` (downsampled or paged) and ``GET /metric-histories``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.api.main import create_app
from tests.api.conftest import READER, SCORER, Store, make_settings, new_store
from tracking.downsample import downsample
from tracking.entities import Metric

POINTS = 2500


def _points(key: str, count: int) -> list[Metric]:
    points = [Metric(key=key, value=float(s % 13), step=s, timestamp=s) for s in range(count)]
    if count > 1500:
        points[1500] = Metric(key=key, value=1000.0, step=1500, timestamp=1500)  # a spike
    return points


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Store, Any]]:
    store = new_store(tmp_path_factory.mktemp("charts"))
    runs = {}
    for name, count in (("a", POINTS), ("b", 300)):
        with store.logger.start_run("charts", run_name=name) as run:
            for point in _points("loss", count):
                run.log_metric("loss", point.value, step=point.step, timestamp=point.timestamp)
            run.log_metric("auc", 0.5, step=0, timestamp=0)
        runs[name] = run.run_id
    with TestClient(create_app(make_settings(store)), raise_server_exceptions=False) as client:
        yield client, store, runs


def _metrics(body: list[dict[str, Any]]) -> list[Metric]:
    return [Metric(**item) for item in body]


def test_history_is_downsampled_to_1000_by_default(charts: Any) -> None:
    client, _, runs = charts
    body = client.get(f"/runs/{runs['a']}/metrics/loss", headers=READER).json()
    assert body["next_token"] is None
    assert _metrics(body["items"]) == downsample(_points("loss", POINTS), 1000)
    assert 1500 in [item["step"] for item in body["items"]]
    small = client.get(f"/runs/{runs['a']}/metrics/loss?max_points=50", headers=READER).json()
    assert len(small["items"]) <= 50
    assert max(item["value"] for item in small["items"]) == 1000.0


def test_paging_is_raw_points(charts: Any) -> None:
    client, _, runs = charts
    first = client.get(f"/runs/{runs['a']}/metrics/loss?max_results=1000", headers=READER).json()
    assert [m["step"] for m in first["items"]] == list(range(1000))
    rest = client.get(
        f"/runs/{runs['a']}/metrics/loss", params={"page_token": first["next_token"]},
        headers=READER,
    ).json()  # fmt: skip
    assert rest["items"][0]["step"] == 1000


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("max_points=1", "max_points"),
        ("max_points=10001", "max_points"),
        ("max_points=abc", "max_points"),
        ("max_points=10&max_results=5", "max_points"),
    ],
)
def test_bad_max_points_is_422(charts: Any, query: str, field: str) -> None:
    client, _, runs = charts
    response = client.get(f"/runs/{runs['a']}/metrics/loss?{query}", headers=READER)
    assert response.status_code == 422
    assert field in response.json()["error"]["message"]


def test_bulk_histories(charts: Any) -> None:
    client, _, runs = charts
    body = client.get(
        "/metric-histories", params={"runs": f"{runs['a']},{runs['b']}", "max_points": 100},
        headers=READER,
    ).json()  # fmt: skip
    histories = body["histories"]
    assert set(histories) == {runs["a"], runs["b"]}
    assert set(histories[runs["b"]]) == {"auc", "loss"}
    assert _metrics(histories[runs["a"]]["loss"]) == downsample(_points("loss", POINTS), 100)
    assert _metrics(histories[runs["b"]]["loss"]) == downsample(_points("loss", 300), 100)
    only = client.get(
        "/metric-histories", params={"runs": runs["b"], "keys": "auc"}, headers=READER
    ).json()
    assert list(only["histories"][runs["b"]]) == ["auc"]


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"runs": "0" * 32}, 404, "not found"),
        ({"runs": ",".join(f"r{i}" for i in range(11))}, 422, "runs"),
        ({"runs": ","}, 422, "runs"),
        ({"runs": "RUN_A", "keys": ",".join(f"k{i}" for i in range(101))}, 422, "keys"),
        ({"runs": "RUN_A", "max_points": "1"}, 422, "max_points"),
        ({}, 422, "runs"),
    ],
)
def test_bulk_errors(charts: Any, params: dict[str, str], status: int, field: str) -> None:
    client, _, runs = charts
    params = {k: v.replace("RUN_A", runs["a"]) for k, v in params.items()}
    response = client.get("/metric-histories", params=params, headers=READER)
    assert response.status_code == status
    assert field in response.json()["error"]["message"]


def test_bulk_needs_read_scope(charts: Any) -> None:
    client, _, runs = charts
    response = client.get("/metric-histories", params={"runs": runs["a"]}, headers=SCORER)
    assert response.status_code == 403
