"""The web UI's sessions: a signed, expiring cookie that names an API key, and CSRF tokens.

A session is made by logging in with an API key (checked against the same ``KeyRing`` as the
``X-API-Key`` header). The cookie carries no key and no scope, only::

    v1.<base64url JSON {"sid": random id, "kid": key id, "exp": unix seconds}>.<HMAC-SHA256>

``kid`` is an HMAC of the key's SHA-256, so the cookie does not reveal which configured hash it
belongs to; on every request it is looked up among the keys configured *now*, so removing a key
(or changing its scopes) takes effect on its sessions at once. Signing uses ``UI_SESSION_SECRET``
or, when unset, a random secret of this process (see settings.py).

CSRF: a state-changing request carries ``csrf_token`` (form field) or ``X-CSRF-Token`` (htmx),
the HMAC of the session id: a token from another session, or none, is refused. The login form,
which has no session yet, is tied the same way to a short-lived ``ui_login`` cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from functions.api.auth import KeyRing, Principal

SESSION_COOKIE = "ui_session"
LOGIN_COOKIE = "ui_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_SECONDS = 15 * 60
_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    sid: str
    principal: Principal
    expires_at: int


class Sessions:
    """Issues and checks session cookies and CSRF tokens for one app."""

    def __init__(self, keyring: KeyRing, secret: bytes | None, lifetime_seconds: int) -> None:
        # A per-process secret when none is configured: safe, but only this process accepts it.
        self._secret = secret or secrets.token_bytes(32)
        self._keyring = keyring
        self.lifetime_seconds = lifetime_seconds

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def _key_id(self, digest: str) -> str:
        return self._mac("key", digest)[:32]

    def _principal_for(self, key_id: str) -> Principal | None:
        found = None
        for digest, principal in self._keyring.entries():
            if hmac.compare_digest(self._key_id(digest), key_id) and found is None:
                found = principal
        return found

    # -- sessions ----------------------------------------------------------------------------

    def issue(self, key_digest: str, now: float | None = None) -> str:
        """A new cookie value for the key with this SHA-256."""
        payload = {
            "sid": secrets.token_hex(16),
            "kid": self._key_id(key_digest),
            "exp": int(now if now is not None else time.time()) + self.lifetime_seconds,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{_VERSION}.{body}.{self._mac('session', body)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie stands for, or ``None`` (absent, forged, expired, key gone)."""
        if not cookie or len(cookie) > 512:
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            return None
        _, body, signature = parts
        if not hmac.compare_digest(self._mac("session", body), signature):
            return None
        try:
            payload = json.loads(_unb64(body))
            sid, key_id, expires = str(payload["sid"]), str(payload["kid"]), int(payload["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= (now if now is not None else time.time()):
            return None
        principal = self._principal_for(key_id)
        return None if principal is None else Session(sid, principal, expires)

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.sid)

    def check_csrf(self, session: Session, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(session), presented or "")

    # -- the login form ----------------------------------------------------------------------

    def new_login_nonce(self) -> str:
        return secrets.token_hex(16)

    def login_token(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def check_login(self, nonce: str | None, presented: str | None) -> bool:
        if not nonce or not presented or len(nonce) > 64:
            return False
        return hmac.compare_digest(self.login_token(nonce), presented)


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https (directly, or through a proxy/API Gateway)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="strict", secure=is_https(request)
    )
