"""Exactly one production version under concurrent promotions and rollbacks, over HTTP.

The SDK-level races (SQLite and moto) are in tests/contract/test_registry_concurrency.py; here the
same races go through the API: ``POST /models/churn/versions/{v}/promote`` and
``POST /models/churn/rollback`` sent at once from threads through one TestClient, on the embedded
SQLite store (the route handlers run concurrently in the app's thread pool, each with its own
store connection). After every trial exactly one version has stage ``production`` and it is the
one the ``production`` alias points at; every response is 200 or 409, and a 409 has the API's
JSON error shape. Counts are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from functions.api.main import create_app
from tests.api.conftest import ADMIN, Store, make_settings, new_store
from tracking import Stage

VERSIONS = 8
MAX_THREADS = 8


@dataclass
class Arena:
    """A store with ``VERSIONS`` versions of churn, an app on it and a pool of racers."""

    store: Store
    client: TestClient
    pool: ThreadPoolExecutor
    statuses: Counter[int] = field(default_factory=Counter)

    def race(self, calls: list[Callable[[], httpx2.Response]]) -> list[httpx2.Response]:
        """Release the calls together (a barrier) and return their responses."""
        barrier = threading.Barrier(len(calls))

        def run(call: Callable[[], httpx2.Response]) -> httpx2.Response:
            barrier.wait(timeout=60)
            return call()

        responses = [future.result() for future in [self.pool.submit(run, c) for c in calls]]
        self.statuses.update(response.status_code for response in responses)
        return responses

    def promote(self, version: int) -> Callable[[], httpx2.Response]:
        return lambda: self.client.post(
            f"/models/churn/versions/{version}/promote",
            json={"to": "production", "reason": "race"},
            headers=ADMIN,
        )

    def rollback(self) -> httpx2.Response:
        return self.client.post("/models/churn/rollback", json={"reason": "race"}, headers=ADMIN)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Train once, then register the same run's model artifact again: 8 versions, v1 in prod."""
    store = new_store(tmp_path_factory.mktemp("races"))
    result = store.train(promote="production")
    for _ in range(VERSIONS - 1):
        store.registry.register_model("churn", run_id=result.run_id, artifact="model")
    return store


@pytest.fixture
def arena(seeded: Store, tmp_path: Path) -> Iterator[Arena]:
    # Each test starts from v1 in production with no history of its own to undo.
    seeded.registry.promote("churn", 1, to="production", reason="reset")
    app = create_app(make_settings(seeded, MODEL_CACHE_DIR=str(tmp_path / "cache")))
    with (
        TestClient(app, raise_server_exceptions=False) as client,
        ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="racer") as pool,
    ):
        yield Arena(seeded, client, pool)


def violations(store: Store) -> list[str]:
    """One version in production, the one the alias points at (read from the store itself)."""
    pointer = store.registry.store.get_alias("churn", "production")
    versions = list(store.registry.store.iter_versions("churn"))
    in_production = [v.version for v in versions if v.stage is Stage.PRODUCTION]
    if pointer is None:
        return [f"no production alias; production stage on {in_production}"]
    if in_production != [pointer.version]:
        return [f"alias -> v{pointer.version} but production stage on {in_production}"]
    return []


def bad_responses(responses: list[httpx2.Response]) -> list[str]:
    """Anything but a 200 with a version, or a 409 with the JSON error shape."""
    found = []
    for response in responses:
        if response.status_code == 200:
            if not isinstance(response.json().get("version"), int):
                found.append(f"200 without a version: {response.text[:200]}")
        elif response.status_code == 409:
            body = response.json()
            error = body.get("error", {})
            if (
                set(body) != {"error"}
                or set(error) != {"code", "message", "request_id"}
                or error["code"] != "conflict"
                or error["request_id"] != response.headers.get("x-request-id")
            ):
                found.append(f"409 without the error shape: {response.text[:200]}")
        else:
            found.append(f"{response.status_code}: {response.text[:200]}")
    return found


def _report(label: str, trials: int, arena: Arena, found: list[str]) -> None:
    # Printed for the closing note (run with -s to see it); asserted by the caller either way.
    statuses = dict(sorted(arena.statuses.items()))
    print(f"\n[http {label}] trials={trials} statuses={statuses} violations={len(found)}")
    for line in found[:10]:
        print(f"  {line}")


@pytest.mark.parametrize(("threads", "trials"), [(2, 1000), (8, 200)])
def test_concurrent_promotions_over_http(arena: Arena, threads: int, trials: int) -> None:
    found: list[str] = []
    for trial in range(trials):
        numbers = [(trial * threads + i) % VERSIONS + 1 for i in range(threads)]
        responses = arena.race([arena.promote(n) for n in numbers])
        found.extend(f"trial {trial}: {problem}" for problem in bad_responses(responses))
        if not any(response.status_code == 200 for response in responses):
            found.append(f"trial {trial}: no winner")
        found.extend(f"trial {trial}: {problem}" for problem in violations(arena.store))
    _report(f"{trials}x{threads} promotions", trials, arena, found)
    assert found == []
    assert set(arena.statuses) <= {200, 409}
    assert sum(arena.statuses.values()) == trials * threads


def test_promote_racing_rollback_over_http(arena: Arena) -> None:
    trials = 300
    found: list[str] = []
    arena.client.post("/models/churn/versions/2/promote", json={"to": "production"},
                      headers=ADMIN).raise_for_status()  # fmt: skip
    for trial in range(trials):
        number = trial % VERSIONS + 1
        responses = arena.race([arena.promote(number), arena.rollback])
        found.extend(f"trial {trial}: {problem}" for problem in bad_responses(responses))
        found.extend(f"trial {trial}: {problem}" for problem in violations(arena.store))
        pointer = arena.store.registry.store.get_alias("churn", "production")
        if pointer is not None and not pointer.previous:
            # Nothing left to roll back to: give the next trial something to undo.
            arena.promote(number % VERSIONS + 1)().raise_for_status()
    _report("promote vs rollback", trials, arena, found)
    assert found == []
    assert set(arena.statuses) <= {200, 409}
    assert arena.statuses[200] >= trials  # at least one of the two wins every trial
