"""Opaque page tokens: base64url of a small JSON object, checked on the way back in."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tracking.errors import InvalidInput


def encode_token(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, required: tuple[str, ...]) -> dict[str, Any]:
    """Decode a token made by ``encode_token``.

    Raises:
        InvalidInput: the token is not ours or lacks one of the ``required`` fields.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("invalid page token") from None
    if not isinstance(state, dict) or not all(_is_cursor(state.get(f)) for f in required):
        raise InvalidInput("invalid page token")
    return state


#: Cursor values are strings or integers a store can bind (SQLite integers are 64-bit).
_MAX_INT = 2**63 - 1
_MAX_TEXT = 2048


def _is_cursor(value: object) -> bool:
    """A token the server made holds only such values; a crafted one may hold anything."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_MAX_INT <= value <= _MAX_INT
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate, from a "\ud800" escape in the JSON
            return False
        return len(value) <= _MAX_TEXT
    return False


def check_page_size(max_results: int, limit: int) -> int:
    if (
        isinstance(max_results, bool)
        or not isinstance(max_results, int)
        or not 1 <= max_results <= limit
    ):
        raise InvalidInput(f"max_results must be an integer from 1 to {limit}")
    return max_results
