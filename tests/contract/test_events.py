"""The event outbox on every backend: one event per change, none for a failed one, delivery
bookkeeping."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest

from tests.contract.conftest import Backend
from tests.models_fixtures import save_model_files
from tracking import Conflict, ExperimentLogger, InvalidInput, ModelRegistry, NotFound
from tracking.clock import now_ms
from tracking.entities import (
    AliasChange,
    EventStatus,
    EventType,
    HistoryAction,
    OutboxRecord,
)
from tracking.events.outbox import event_id_for
from tracking.registry import _move
from tracking.stores.ports.store import TrackingStore


@pytest.fixture
def registry(backend: Backend, tmp_path: Path) -> ModelRegistry:
    logger = ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)
    files = save_model_files(tmp_path / "files")
    run = logger.log_experiment("churn", artifacts={"model": files["json"]})
    registry = ModelRegistry(store=backend.metadata, artifact_store=backend.artifacts, actor="ops")
    registry.run_id = run.run_id  # type: ignore[attr-defined]
    return registry


def _store(registry: ModelRegistry) -> TrackingStore:
    return registry.store


def _events(registry: ModelRegistry) -> list[OutboxRecord]:
    return list(_store(registry).list_events(max_results=1000).items)


def _register(registry: ModelRegistry, count: int = 1) -> None:
    for _ in range(count):
        registry.register_model("churn", registry.run_id, "model")  # type: ignore[attr-defined]


def test_every_change_writes_one_event_with_its_history_entry(registry: ModelRegistry) -> None:
    _register(registry, 3)
    registry.promote("churn", 1, to="production", reason="first", actor="alice")
    registry.promote("churn", 2, to="production", reason="better")
    registry.promote("churn", 3, to="staging")
    registry.rollback("churn", reason="regression")
    registry.archive("churn", 3)
    registry.promote("churn", 2, to="challenger")
    registry.set_traffic("churn", weights={"production": 90, "challenger": 10}, reason="canary")
    registry.clear_traffic("churn")
    records = _events(registry)
    history = registry.history("churn")
    assert len(records) == len(history) == 11
    # One event per history entry, with the entry's facts, oldest first.
    for record, entry in zip(records, history, strict=True):
        event = record.event
        assert event.event_id == event_id_for(entry.change_id)
        uuid.UUID(event.event_id)
        assert (event.model, event.actor, event.reason, event.time) == (
            entry.name,
            entry.actor,
            entry.reason,
            entry.timestamp,
        )
        assert (event.alias, event.from_version, event.to_version) == (
            entry.alias,
            entry.from_version,
            entry.to_version,
        )
        assert record.status is EventStatus.PENDING
        assert record.attempts == 0
    assert [r.event.type for r in records] == [
        EventType.MODEL_VERSION_REGISTERED,
        EventType.MODEL_VERSION_REGISTERED,
        EventType.MODEL_VERSION_REGISTERED,
        EventType.ALIAS_MOVED,
        EventType.ALIAS_MOVED,
        EventType.ALIAS_MOVED,
        EventType.ALIAS_MOVED,
        EventType.MODEL_VERSION_ARCHIVED,
        EventType.ALIAS_MOVED,
        EventType.TRAFFIC_CHANGED,
        EventType.TRAFFIC_CHANGED,
    ]
    promoted = records[4].event
    assert (promoted.alias, promoted.from_version, promoted.to_version) == ("production", 1, 2)
    assert records[3].event.actor == "alice"
    rolled = records[6].event
    assert (rolled.alias, rolled.from_version, rolled.to_version, rolled.reason) == (
        "production",
        2,
        1,
        "regression",
    )
    traffic = records[9].event.traffic
    assert traffic is not None
    assert traffic["weights"] == {"production": 90, "challenger": 10}
    assert traffic["revision"] == 1
    body = records[4].event.body()
    assert body["from"] == 1
    assert body["to"] == 2
    assert body["type"] == "alias.moved"


def test_failed_moves_write_no_event(registry: ModelRegistry) -> None:
    _register(registry, 2)
    registry.promote("churn", 1, to="production")
    before = _events(registry)
    with pytest.raises(InvalidInput):
        registry.promote("churn", 2, to="../x")
    with pytest.raises(NotFound):
        registry.promote("churn", 9, to="production")
    with pytest.raises(Conflict):
        registry.promote("churn", 1, to="staging")  # production already
    with pytest.raises(Conflict):
        registry.rollback("churn")  # nothing earlier
    with pytest.raises(InvalidInput):
        registry.set_traffic("churn", weights={"production": 50})
    # A lost race at the store: the alias moved after it was read.
    store = _store(registry)
    stale = store.get_alias("churn", "production")
    registry.promote("churn", 2, to="production")
    before = _events(registry)
    change = AliasChange(
        name="churn",
        action=HistoryAction.PROMOTE,
        alias="production",
        from_version=2,
        to_version=1,
        actor="late",
        timestamp=now_ms(),
        change_id=uuid.uuid4().hex,
    )
    with pytest.raises(Conflict):
        store.apply_change(
            "churn",
            alias_writes=[_move("production", stale, 1)],
            stage_updates={},
            change=change,
        )
    assert _events(registry) == before


def test_a_repeated_change_never_duplicates_its_event(registry: ModelRegistry) -> None:
    """The same change sent twice (a retry after a lost answer) leaves one event."""
    _register(registry, 2)
    store = _store(registry)
    current = store.get_alias("churn", "production")
    change = AliasChange(
        name="churn",
        action=HistoryAction.PROMOTE,
        alias="production",
        to_version=1,
        actor="retry",
        timestamp=now_ms(),
        change_id=uuid.uuid4().hex,
    )
    writes = [_move("production", current, 1)]
    store.apply_change("churn", alias_writes=writes, stage_updates={}, change=change)
    # DynamoDB sees its own history item and reports success; SQLite sees the moved alias.
    with contextlib.suppress(Conflict):
        store.apply_change("churn", alias_writes=writes, stage_updates={}, change=change)
    moved = [r for r in _events(registry) if r.event.type == EventType.ALIAS_MOVED]
    assert [r.event.event_id for r in moved] == [event_id_for(change.change_id)]
    assert sum(h.change_id == change.change_id for h in registry.history("churn")) == 1


def test_delivery_state_is_claimed_conditionally(registry: ModelRegistry) -> None:
    _register(registry, 3)
    store = _store(registry)
    first, second, third = _events(registry)
    now = now_ms()
    due = store.due_events(now)
    assert [r.event.event_id for r in due] == [
        first.event.event_id,
        second.event.event_id,
        third.event.event_id,
    ]
    claimed = first.model_copy(update={"attempts": 1, "next_attempt_at": now + 60_000})
    assert store.update_delivery(claimed, expected_attempts=0)
    # A second dispatcher that read the same attempt count loses.
    assert not store.update_delivery(claimed, expected_attempts=0)
    assert [r.event.event_id for r in store.due_events(now)] == [
        second.event.event_id,
        third.event.event_id,
    ]
    delivered = claimed.model_copy(update={"status": EventStatus.DELIVERED, "delivered_to": ["a"]})
    assert store.update_delivery(delivered, expected_attempts=1)
    dead = second.model_copy(
        update={"status": EventStatus.DEAD, "attempts": 1, "last_error": "HTTP 500"}
    )
    assert store.update_delivery(dead, expected_attempts=0)
    assert store.get_event(first.event.event_id) == delivered
    assert store.get_event(second.event.event_id) == dead
    assert store.get_event(first.event.event_id).event == first.event  # the event never changes
    assert [r.event.event_id for r in store.list_events(EventStatus.DEAD).items] == [
        second.event.event_id
    ]
    assert [r.event.event_id for r in store.list_events(EventStatus.PENDING).items] == [
        third.event.event_id
    ]
    assert [r.event.event_id for r in store.due_events(now)] == [third.event.event_id]
    with pytest.raises(NotFound):
        store.get_event(str(uuid.uuid4()))
    ghost = first.model_copy(
        update={"event": first.event.model_copy(update={"event_id": str(uuid.uuid4())})}
    )
    with pytest.raises(NotFound):
        store.update_delivery(ghost, expected_attempts=0)


def test_events_page_oldest_first(registry: ModelRegistry) -> None:
    _register(registry, 5)
    store = _store(registry)
    everything = _events(registry)
    dead = everything[2].model_copy(update={"status": EventStatus.DEAD, "attempts": 1})
    assert store.update_delivery(dead, expected_attempts=0)
    seen: list[str] = []
    token = None
    while True:
        page = store.list_events(max_results=2, page_token=token)
        seen += [r.event.event_id for r in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == [r.event.event_id for r in everything]
    with pytest.raises(InvalidInput):
        store.list_events(page_token="garbage")
