"""The one clock of the SDK and its stores: integer milliseconds since the Unix epoch (UTC)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch, as every stored time is (see ``tracking.entities``)."""
    return time.time_ns() // 1_000_000
