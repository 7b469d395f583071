"""Traffic policies on every backend: set/get/clear, refusals that write nothing, lost races."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.contract.conftest import RACE_BACKENDS, Backend
from tests.models_fixtures import save_model_files
from tracking import Conflict, ExperimentLogger, InvalidInput, ModelRegistry, NotFound
from tracking.clock import now_ms
from tracking.entities import AliasChange, HistoryAction, TrafficPolicy
from tracking.stores.ports.store import TrackingStore


@pytest.fixture
def registry(backend: Backend, tmp_path: Path) -> ModelRegistry:
    logger = ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)
    files = save_model_files(tmp_path / "files")
    run = logger.log_experiment("churn", artifacts={"model": files["json"]})
    registry = ModelRegistry(store=backend.metadata, artifact_store=backend.artifacts, actor="ops")
    for _ in range(3):
        registry.register_model("churn", run.run_id, "model")
    registry.promote("churn", 1, to="production")
    registry.promote("churn", 2, to="challenger")
    registry.promote("churn", 3, to="staging")
    return registry


def _store(registry: ModelRegistry) -> TrackingStore:
    return registry.store


def _state(registry: ModelRegistry) -> dict[str, Any]:
    """Everything a traffic write may touch: the policy, the history and the outbox."""
    store = _store(registry)
    return {
        "policy": store.get_traffic("churn"),
        "history": registry.history("churn"),
        "events": store.list_events(max_results=1000).items,
        "model": registry.get_model("churn"),
    }


def test_no_policy_means_production_only(registry: ModelRegistry) -> None:
    policy = registry.get_traffic("churn")
    assert policy.weights == {"production": 100}
    assert policy.shadow == []
    assert policy.sticky is None
    assert policy.revision == 0
    assert policy.is_default


def test_set_get_and_clear(registry: ModelRegistry) -> None:
    policy = registry.set_traffic(
        "churn",
        weights={"production": 90, "challenger": 10},
        shadow=["staging"],
        sticky="player_id",
        reason="canary 10%",
        actor="alice",
    )
    assert policy.weights == {"production": 90, "challenger": 10}
    assert policy.shadow == ["staging"]
    assert policy.sticky == "player_id"
    assert policy.revision == 1
    assert policy.updated_by == "alice"
    assert policy.reason == "canary 10%"
    assert registry.get_traffic("churn") == policy
    with pytest.raises(ValidationError, match="frozen"):
        policy.weights = {}  # type: ignore[misc]

    second = registry.set_traffic("churn", weights={"production": 50, "challenger": 50})
    assert second.revision == 2
    assert second.policy_id != policy.policy_id  # stickiness reshuffles on every change
    assert second.shadow == []
    assert second.sticky is None

    cleared = registry.clear_traffic("churn", reason="canary over")
    assert cleared.weights == {"production": 100}
    assert cleared.shadow == []
    assert cleared.revision == 3
    assert registry.get_traffic("churn") == cleared
    # Clearing what is already production-only records nothing more.
    assert registry.clear_traffic("churn") == cleared
    entries = [h for h in registry.history("churn") if h.action is HistoryAction.TRAFFIC]
    assert [(h.actor, h.reason) for h in entries] == [
        ("alice", "canary 10%"),
        ("ops", None),
        ("ops", "canary over"),
    ]


def test_alias_names_are_normalised_like_aliases(registry: ModelRegistry) -> None:
    policy = registry.set_traffic("churn", weights={"Production": 95, "CHALLENGER": 5})
    assert policy.weights == {"production": 95, "challenger": 5}


def test_unknown_model(registry: ModelRegistry) -> None:
    with pytest.raises(NotFound):
        registry.get_traffic("nope")
    with pytest.raises(NotFound):
        registry.set_traffic("nope", weights={"production": 100})
    with pytest.raises(NotFound):
        registry.clear_traffic("nope")


BAD_POLICIES: list[tuple[str, dict[str, Any]]] = [
    ("sum 99", {"weights": {"production": 89, "challenger": 10}}),
    ("sum 101", {"weights": {"production": 91, "challenger": 10}}),
    ("negative", {"weights": {"production": 110, "challenger": -10}}),
    ("above 100", {"weights": {"production": 101}}),
    ("float", {"weights": {"production": 90.0, "challenger": 10}}),
    ("bool", {"weights": {"production": True, "challenger": 99}}),
    ("string", {"weights": {"production": "100"}}),
    ("empty", {"weights": {}}),
    ("not a mapping", {"weights": [("production", 100)]}),
    ("unknown alias", {"weights": {"production": 90, "ghost": 10}}),
    ("unknown alias at 0", {"weights": {"production": 100, "ghost": 0}}),
    ("bad alias name", {"weights": {"production": 90, "../x": 10}}),
    ("twice after case", {"weights": {"production": 90, "PRODUCTION": 10}}),
    ("shadow weighted", {"weights": {"production": 100}, "shadow": ["production"]}),
    ("shadow unknown", {"weights": {"production": 100}, "shadow": ["ghost"]}),
    ("shadow twice", {"weights": {"production": 100}, "shadow": ["staging", "staging"]}),
    ("shadow a string", {"weights": {"production": 100}, "shadow": "staging"}),
    ("sticky dash", {"weights": {"production": 100}, "sticky": "player-id"}),
    ("sticky path", {"weights": {"production": 100}, "sticky": "a.b"}),
    ("sticky empty", {"weights": {"production": 100}, "sticky": ""}),
    ("sticky digit", {"weights": {"production": 100}, "sticky": "1x"}),
    ("reason too long", {"weights": {"production": 100}, "reason": "x" * 1001}),
]


@pytest.mark.parametrize(("case", "kwargs"), BAD_POLICIES, ids=[c for c, _ in BAD_POLICIES])
def test_bad_policies_are_refused_with_nothing_written(
    registry: ModelRegistry, case: str, kwargs: dict[str, Any]
) -> None:
    registry.set_traffic("churn", weights={"production": 90, "challenger": 10})
    before = _state(registry)
    with pytest.raises(InvalidInput):
        registry.set_traffic("churn", **kwargs)
    assert _state(registry) == before, case


def _policy(revision: int, weights: dict[str, int]) -> TrafficPolicy:
    return TrafficPolicy(
        name="churn",
        policy_id=uuid.uuid4().hex,
        weights=weights,
        revision=revision,
        updated_at=now_ms(),
        updated_by="race",
    )


def _change() -> AliasChange:
    return AliasChange(
        name="churn",
        action=HistoryAction.TRAFFIC,
        actor="race",
        timestamp=now_ms(),
        change_id=uuid.uuid4().hex,
    )


def test_two_writers_with_the_same_expected_revision(registry: ModelRegistry) -> None:
    store = _store(registry)
    store.set_traffic(
        "churn",
        policy=_policy(1, {"production": 90, "challenger": 10}),
        expected_revision=0,
        alias_checks=[],
        change=_change(),
    )
    before = _state(registry)
    with pytest.raises(Conflict):
        store.set_traffic(
            "churn",
            policy=_policy(1, {"production": 50, "challenger": 50}),
            expected_revision=0,
            alias_checks=[],
            change=_change(),
        )
    assert _state(registry) == before
    assert registry.get_traffic("churn").weights == {"production": 90, "challenger": 10}


def test_a_policy_never_names_an_alias_that_moved_meanwhile(registry: ModelRegistry) -> None:
    from tracking.registry import _check

    store = _store(registry)
    stale = _check("challenger", store.get_alias("churn", "challenger"))
    registry.promote("churn", 3, to="challenger")  # the alias moves after it was read
    before = _state(registry)
    with pytest.raises(Conflict):
        store.set_traffic(
            "churn",
            policy=_policy(1, {"production": 90, "challenger": 10}),
            expected_revision=0,
            alias_checks=[stale],
            change=_change(),
        )
    assert _state(registry) == before


@RACE_BACKENDS
def test_racing_writers_each_win_or_conflict(registry: ModelRegistry) -> None:
    writers = 6
    barrier = threading.Barrier(writers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def write(share: int) -> None:
        barrier.wait()
        try:
            registry.set_traffic("churn", weights={"production": 100 - share, "challenger": share})
            outcome = "ok"
        except Conflict:
            outcome = "conflict"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=write, args=(n + 1,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wins = outcomes.count("ok")
    assert wins >= 1
    assert wins + outcomes.count("conflict") == writers
    assert registry.get_traffic("churn").revision == wins
    traffic = [h for h in registry.history("churn") if h.action is HistoryAction.TRAFFIC]
    assert len(traffic) == wins
    events = list(_store(registry).list_events(max_results=1000).items)
    assert sum(r.event.type == "traffic.changed" for r in events) == wins
