"""Assignment of requests to variants: sticky by (policy id, key), fair to the weights."""

from __future__ import annotations

import random
from collections import Counter

from functions.api.traffic import BUCKETS, Split, bucket
from tracking.entities import TrafficPolicy


def _policy(policy_id: str = "p1", **weights: int) -> TrafficPolicy:
    return TrafficPolicy(name="churn", policy_id=policy_id, weights=weights or
                         {"production": 90, "challenger": 10}, shadow=["staging"],
                         sticky="player_id", revision=1)  # fmt: skip


def test_the_default_policy_needs_no_split() -> None:
    default = TrafficPolicy(name="churn", policy_id="d", weights={"production": 100})
    assert Split.of(default) is None


def test_one_player_stays_on_one_variant() -> None:
    split = Split.of(_policy())
    assert split is not None
    for player in ("p_1", "p_2", "p_123", "player-with-a-long-id-0042"):
        assert len({split.assign(player) for _ in range(10_000)}) == 1


def test_the_observed_split_is_within_one_point_of_the_weights() -> None:
    split = Split.of(_policy(production=70, challenger=20, canary=10))
    assert split is not None
    counts = Counter(split.assign(f"p_{i}") for i in range(100_000))
    for alias, weight in (("production", 70), ("challenger", 20), ("canary", 10)):
        assert abs(counts[alias] / 1000 - weight) < 1.0, (alias, counts)


def test_a_new_policy_reshuffles_deterministically() -> None:
    first = Split.of(_policy("policy-a"))
    second = Split.of(_policy("policy-b"))
    assert first is not None
    assert second is not None
    players = [f"p_{i}" for i in range(20_000)]
    before = [first.assign(p) for p in players]
    after = [second.assign(p) for p in players]
    assert after == [second.assign(p) for p in players]  # the same policy, the same answer
    # Independent hashes: ~18 % of players change side under a 90/10 split (2 * 0.9 * 0.1).
    moved = sum(a != b for a, b in zip(before, after, strict=True)) / len(players)
    assert 0.15 < moved < 0.21


def test_requests_without_the_sticky_value_are_assigned_at_random() -> None:
    split = Split.of(_policy())
    assert split is not None
    rng = random.Random(5)
    counts = Counter(split.assign(None, rng.random) for _ in range(20_000))
    assert abs(counts["challenger"] / 20_000 - 0.10) < 0.01
    assert split.assign(None, lambda: 0.0) == "production"
    assert split.assign(None, lambda: 0.9999) == "challenger"


def test_bucket_is_uniform_and_in_range() -> None:
    points = [bucket("p", f"k{i}") for i in range(50_000)]
    assert min(points) >= 0
    assert max(points) < BUCKETS
    deciles = Counter(point * 10 // BUCKETS for point in points)
    assert all(abs(count - 5_000) < 300 for count in deciles.values())


def test_zero_weights_take_no_traffic_and_shadows_are_loaded() -> None:
    split = Split.of(_policy(production=100, challenger=0))
    assert split is not None  # a shadow makes it a policy
    assert {split.assign(f"p_{i}") for i in range(5_000)} == {"production"}
    assert split.aliases == ("production", "staging")
