"""The ``IdempotencyStore`` port, on every backend: claim, complete, release, expiry."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.contract.conftest import RACE_BACKENDS, Backend
from tracking.stores.ports.idempotency import IdempotencyRecord
from tracking.stores.ports.store import TrackingStore

NOW = 1_800_000_000
LATER = NOW + 86_400


def _store(backend: Backend) -> TrackingStore:
    store = backend.metadata
    assert isinstance(store, TrackingStore)
    return store


def test_claim_a_new_key_then_see_it_held(backend: Backend) -> None:
    store = _store(backend)
    assert store.claim("alice:k1", "fp-1", NOW, LATER) is None
    held = store.claim("alice:k1", "fp-2", NOW + 1, LATER + 1)
    assert held == IdempotencyRecord(
        key="alice:k1", fingerprint="fp-1", status="in_progress", expires_at=LATER
    )
    # Another key is independent.
    assert store.claim("bob:k1", "fp-1", NOW, LATER) is None


def test_complete_stores_the_answer(backend: Backend) -> None:
    store = _store(backend)
    assert store.claim("k", "fp", NOW, LATER) is None
    store.complete("k", "fp", 200, '{"version": 1}')
    held = store.claim("k", "fp", NOW + 5, LATER + 5)
    assert held is not None
    assert held.status == "completed"
    assert held.fingerprint == "fp"
    assert (held.response_status, held.response_body) == (200, '{"version": 1}')
    assert held.expires_at == LATER
    # A completed record is never released.
    store.release("k")
    assert store.claim("k", "fp", NOW + 6, LATER + 6) == held


def test_complete_with_another_fingerprint_changes_nothing(backend: Backend) -> None:
    store = _store(backend)
    assert store.claim("k", "fp", NOW, LATER) is None
    store.complete("k", "other", 200, "{}")
    held = store.claim("k", "fp", NOW, LATER)
    assert held is not None
    assert held.status == "in_progress"


def test_release_lets_the_key_be_claimed_again(backend: Backend) -> None:
    store = _store(backend)
    assert store.claim("k", "fp", NOW, LATER) is None
    store.release("k")
    assert store.claim("k", "fp-2", NOW, LATER) is None
    held = store.claim("k", "fp", NOW, LATER)
    assert held is not None
    assert held.fingerprint == "fp-2"
    store.release("missing")  # releasing nothing is fine


def test_an_expired_record_is_replaced(backend: Backend) -> None:
    store = _store(backend)
    assert store.claim("k", "fp", NOW, NOW + 10) is None
    store.complete("k", "fp", 409, '{"error": {}}')
    assert store.claim("k", "fp-new", NOW + 10, NOW + 100) is not None  # not yet expired
    assert store.claim("k", "fp-new", NOW + 11, NOW + 100) is None
    held = store.claim("k", "fp", NOW + 12, NOW + 200)
    assert held == IdempotencyRecord(
        key="k", fingerprint="fp-new", status="in_progress", expires_at=NOW + 100
    )


@RACE_BACKENDS
def test_one_concurrent_claim_wins(backend: Backend) -> None:
    store = _store(backend)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: store.claim("race", f"fp-{i}", NOW, LATER), range(8)))
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1
    assert {result.fingerprint for result in results if result is not None} == {f"fp-{winners[0]}"}


def test_complete_can_extend_the_expiry(backend: Backend) -> None:
    store = _store(backend)
    assert store.claim("k", "fp", NOW, NOW + 60) is None
    store.complete("k", "fp", 201, "{}", expires_at=LATER)
    held = store.claim("k", "fp", NOW + 61, NOW + 121)
    assert held is not None
    assert (held.status, held.response_status, held.expires_at) == ("completed", 201, LATER)


def test_complete_after_the_key_was_released_writes_nothing(backend: Backend) -> None:
    store = _store(backend)
    assert store.claim("k", "fp", NOW, LATER) is None
    store.release("k")
    store.complete("k", "fp", 200, "{}", expires_at=LATER)
    assert store.claim("k", "fp", NOW, LATER) is None
