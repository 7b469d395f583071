"""Which variant (alias) of a model answers a request, under the model's traffic policy.

A request is placed on one of ``BUCKETS`` points by a hash of (policy id, sticky value), and the
policy's weights cut that line into one interval per alias, in the policy's order. So one player
stays on one variant for as long as the policy is unchanged, and a new policy (a new id)
reshuffles everyone deterministically. A request without the sticky value gets a random point.
The hash is keyed by the policy id, not by a secret: assignment is not a security boundary (a
caller can always pin ``?alias=``), only a fair and stable split.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracking.entities import TrafficPolicy

#: Points on the line: weights are whole percentages, so each percent is 100 points.
BUCKETS = 10_000
PRODUCTION = "production"


def bucket(policy_id: str, key: str) -> int:
    """The point of ``key`` under policy ``policy_id``, uniform on ``[0, BUCKETS)``."""
    digest = hashlib.blake2b(f"{policy_id}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True)
class Split:
    """A non-default policy, prepared for the hot path (cumulative bounds, no dict walks)."""

    policy_id: str
    bounds: tuple[tuple[int, str], ...]  # (exclusive upper point, alias), ascending
    shadow: tuple[str, ...]
    sticky: str | None

    @classmethod
    def of(cls, policy: TrafficPolicy) -> Split | None:
        """``None`` for the default policy (production answers everything, nothing shadows)."""
        if policy.is_default:
            return None
        bounds, upper = [], 0
        for alias, weight in policy.weights.items():
            if weight > 0:
                upper += weight * (BUCKETS // 100)
                bounds.append((upper, alias))
        return cls(policy.policy_id, tuple(bounds), tuple(policy.shadow), policy.sticky)

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every alias the policy needs loaded: the weighted ones, then the shadows."""
        return tuple(dict.fromkeys([alias for _, alias in self.bounds] + list(self.shadow)))

    def assign(self, key: str | None, draw: Callable[[], float] = random.random) -> str:
        """The alias that answers a request whose sticky value is ``key`` (``None``: random)."""
        point = int(draw() * BUCKETS) if key is None else bucket(self.policy_id, key)
        for upper, alias in self.bounds:
            if point < upper:
                return alias
        return self.bounds[-1][1]  # unreachable when the weights sum to 100

    def key_of(self, row: Any) -> str | None:
        """The sticky value of a validated row, as text (``None`` when absent or unset)."""
        if self.sticky is None:
            return None
        value = getattr(row, self.sticky, None)
        return None if value is None else str(value)
