"""Webhook settings and signatures.

Each delivery is a POST of the event's JSON with these headers (Stripe/Svix style)::

    X-Event-Id: <event id, a UUID; the same on every redelivery>
    X-Event-Type: <event type, e.g. alias.moved>
    X-Event-Timestamp: <unix seconds when this attempt was signed>
    X-Event-Signature: v1=<hex of HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")>

A receiver recomputes the HMAC over the raw body, compares in constant time, refuses old
timestamps (replays), and dedupes by ``X-Event-Id`` (delivery is at-least-once).
``verify_signature`` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tracking.errors import InvalidInput
from tracking.events.addresses import parse_url

ID_HEADER = "X-Event-Id"
TYPE_HEADER = "X-Event-Type"
TIMESTAMP_HEADER = "X-Event-Timestamp"
SIGNATURE_HEADER = "X-Event-Signature"
SIGNATURE_VERSION = "v1"
#: How old a signed timestamp a receiver should accept (``verify_signature``'s default).
TOLERANCE_SECONDS = 300


class Webhook(BaseModel):
    """One receiver: where, the shared secret (or the variable holding it), which events."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
    url: str
    secret: str | None = Field(default=None, min_length=16, repr=False)
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: Event types to send (``alias.moved``, ...); empty: all of them.
    events: tuple[str, ...] = ()

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        # The form only (https, no user info); the address is checked at each delivery, after
        # resolution. http is accepted here and refused at delivery unless loopback is allowed.
        try:
            parse_url(url, allow_http_loopback=True)
        except InvalidInput as error:
            raise ValueError(error.message) from None
        return url

    @model_validator(mode="after")
    def _one_secret(self) -> Webhook:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError(f"webhook {self.name!r} needs exactly one of secret, secret_env")
        return self

    def signing_secret(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret, read from ``secret_env`` when that is how it is configured.

        Raises:
            InvalidInput: the variable is unset or shorter than 16 characters.
        """
        if self.secret is not None:
            return self.secret
        value = (os.environ if environ is None else environ).get(self.secret_env or "", "")
        if len(value) < 16:
            raise InvalidInput(
                f"webhook {self.name!r}: variable {self.secret_env} must hold a secret of at "
                "least 16 characters"
            )
        return value

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


def parse_webhooks(value: Any) -> tuple[Webhook, ...]:
    """``EVENT_WEBHOOKS``: a JSON list of ``{name, url, secret | secret_env, events}``.

    Raises:
        ValueError: not JSON, not a list, a bad entry, or two webhooks with one name.
    """
    if isinstance(value, str):
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"EVENT_WEBHOOKS is not valid JSON: {error.msg}") from None
    if not isinstance(value, list | tuple):
        raise ValueError("EVENT_WEBHOOKS must be a JSON list")
    hooks = tuple(_webhook(index, item) for index, item in enumerate(value))
    names = [hook.name for hook in hooks]
    if len(set(names)) != len(names):
        raise ValueError("EVENT_WEBHOOKS names must be unique")
    return hooks


def _webhook(index: int, item: Any) -> Webhook:
    if isinstance(item, Webhook):
        return item
    try:
        return Webhook.model_validate(item)
    except ValidationError as error:
        # pydantic's message repeats the input, secret included: name the fields only.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'entry'}: {e['msg']}"
            for e in error.errors(include_input=False)
        )
        raise ValueError(f"EVENT_WEBHOOKS[{index}]: {problems}") from None


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``X-Event-Signature`` value of one attempt."""
    message = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(
    secret: str, event_id: str, event_type: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        ID_HEADER: event_id,
        TYPE_HEADER: event_type,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, event_id, timestamp, body),
    }


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance_seconds: int = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: a v1 signature over id, timestamp and the raw body, recent."""
    lowered = {key.lower(): value for key, value in headers.items()}
    event_id = lowered.get(ID_HEADER.lower(), "")
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not event_id or not stamp.isdigit() or abs(now - int(stamp)) > tolerance_seconds:
        return False
    expected = sign(secret, event_id, int(stamp), body)
    # Several signatures may be sent during a secret rotation: "v1=a v1=b".
    return any(hmac.compare_digest(expected, part) for part in given.split())
