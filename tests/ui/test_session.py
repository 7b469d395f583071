"""Session cookies and CSRF tokens (functions/api/ui/session.py), without an app."""

from __future__ import annotations

import hashlib

from functions.api.auth import KeyRing
from functions.api.settings import ApiKeySpec
from functions.api.ui.session import Sessions

DIGEST = hashlib.sha256(b"key-one").hexdigest()
OTHER = hashlib.sha256(b"key-two").hexdigest()


def ring(*digests: str) -> KeyRing:
    return KeyRing(
        tuple(ApiKeySpec(name=f"k{i}", scopes=("read",), sha256=d) for i, d in enumerate(digests))
    )


def test_a_cookie_names_its_key_and_expires() -> None:
    sessions = Sessions(ring(DIGEST, OTHER), b"x" * 32, lifetime_seconds=600)
    cookie = sessions.issue(OTHER, now=1000)
    session = sessions.read(cookie, now=1500)
    assert session is not None
    assert session.principal.name == "k1"
    assert sessions.read(cookie, now=1600) is None  # expired
    assert DIGEST not in cookie
    assert OTHER not in cookie


def test_a_forged_or_foreign_cookie_is_refused() -> None:
    sessions = Sessions(ring(DIGEST), b"x" * 32, lifetime_seconds=600)
    cookie = sessions.issue(DIGEST)
    version, body, signature = cookie.split(".")
    assert sessions.read(f"{version}.{body}.{'0' * len(signature)}") is None
    assert sessions.read(f"{version}.{body[:-2]}AA.{signature}") is None
    assert sessions.read("garbage") is None
    assert sessions.read("") is None
    # Another secret (another process without UI_SESSION_SECRET) does not accept it.
    assert Sessions(ring(DIGEST), b"y" * 32, 600).read(cookie) is None
    # Two processes with no configured secret refuse each other's cookies.
    assert (
        Sessions(ring(DIGEST), None, 600).read(Sessions(ring(DIGEST), None, 600).issue(DIGEST))
        is None
    )


def test_removing_the_key_ends_its_sessions() -> None:
    cookie = Sessions(ring(DIGEST), b"x" * 32, 600).issue(DIGEST)
    assert Sessions(ring(OTHER), b"x" * 32, 600).read(cookie) is None


def test_csrf_tokens_are_tied_to_the_session() -> None:
    sessions = Sessions(ring(DIGEST), b"x" * 32, lifetime_seconds=600)
    first = sessions.read(sessions.issue(DIGEST))
    second = sessions.read(sessions.issue(DIGEST))
    assert first is not None
    assert second is not None
    assert sessions.check_csrf(first, sessions.csrf_token(first))
    assert not sessions.check_csrf(first, sessions.csrf_token(second))
    assert not sessions.check_csrf(first, None)
    assert not sessions.check_csrf(first, "")
    nonce = sessions.new_login_nonce()
    assert sessions.check_login(nonce, sessions.login_token(nonce))
    assert not sessions.check_login(sessions.new_login_nonce(), sessions.login_token(nonce))
    assert not sessions.check_login(None, sessions.login_token(nonce))
