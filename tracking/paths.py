"""Names a local file or folder goes by, for redacting them from messages."""

from __future__ import annotations

from pathlib import Path


def local_names(path: Path) -> frozenset[str]:
    """The path as configured and as resolved (a message may carry either)."""
    text = str(path)
    if not text or text == ".":
        return frozenset()
    return frozenset({text.rstrip("/") or text, str(path.resolve())})
