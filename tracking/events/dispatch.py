"""The webhook dispatcher: POST due outbox events, retry with backoff, dead-letter.

For each due event (``OutboxStore.due_events``), the dispatcher

1. claims it: one conditional write raising ``attempts`` and moving ``next_attempt_at`` past
   the time the attempt may take, so a second dispatcher skips it (and a dispatcher that dies
   mid-way only delays it);
2. POSTs it to every configured webhook that wants its type and has not answered 2xx yet, to
   the address checked after resolution (``addresses.resolve_target``), never following a
   redirect (a 3xx is a failure);
3. records the outcome: ``delivered`` when every webhook has it, else ``pending`` again after
   an exponential backoff, or ``dead`` after ``max_attempts``.

Delivery is at-least-once: a receiver that answers 2xx after the dispatcher gave up on the
attempt gets the event again, with the same ``X-Event-Id``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tracking.clock import now_ms
from tracking.config import EventsConfig
from tracking.entities import EventStatus, OutboxRecord
from tracking.errors import InvalidInput, TrackingError
from tracking.events.addresses import Resolver, resolve_target
from tracking.events.webhooks import Webhook, signed_headers
from tracking.stores.ports.outbox import MAX_DUE, OutboxStore

log = logging.getLogger(__name__)

USER_AGENT = "mlops-registry-events/1"
MAX_ERROR = 500


@dataclass
class DeliveryReport:
    """What one ``deliver_due`` call did, by event id."""

    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Dispatcher:
    """Delivers outbox events to the configured webhooks.

    Args:
        store: the outbox.
        config: webhooks, retry and timeout settings.
        clock: milliseconds since the epoch (tests move it forward instead of waiting).
        transport: an httpx transport (default: a fresh ``HTTPTransport``, no proxies).
        resolver: ``socket.getaddrinfo``'s signature (tests point names at chosen addresses).
    """

    def __init__(
        self,
        store: OutboxStore,
        config: EventsConfig,
        *,
        clock: Callable[[], int] = now_ms,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self.store = store
        self.config = config
        self._clock = clock
        self._transport = transport
        self._resolver = resolver
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        """One client per pass: its TLS context and connections are reused across events.

        Connections are pooled by the checked address the URL names, so reuse never skips a
        check: every request's address was checked after its own resolution.
        """
        if self._client is None:
            # trust_env=False: no proxy from the environment may carry the request elsewhere.
            self._client = httpx.Client(
                transport=self._transport or httpx.HTTPTransport(retries=0),
                timeout=self.config.timeout_seconds,
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    def close(self) -> None:
        """Close the pass's connections (an injected transport belongs to its owner)."""
        if self._client is not None and self._transport is None:
            self._client.close()
        self._client = None

    @property
    def enabled(self) -> bool:
        return bool(self.config.webhooks)

    def backoff_ms(self, attempts: int) -> int:
        """Wait before attempt ``attempts + 1``: base * 2**(attempts-1), capped."""
        delay = self.config.backoff_seconds * 2 ** max(0, attempts - 1)
        return int(min(delay, self.config.backoff_max_seconds) * 1000)

    def deliver_due(
        self, *, limit: int = MAX_DUE, budget_seconds: float | None = None
    ) -> DeliveryReport:
        """Deliver up to ``limit`` due events; start none after ``budget_seconds``.

        Each attempt is bounded by the webhooks' timeout, so the call ends within about
        ``budget_seconds`` plus one event's attempt.
        """
        report = DeliveryReport()
        if not self.enabled:
            return report
        started = time.monotonic()
        try:
            for record in self.store.due_events(self._clock(), limit):
                if budget_seconds is not None and time.monotonic() - started > budget_seconds:
                    break
                outcome = self.deliver(record)
                event_id = record.event.event_id
                if outcome is None:
                    report.skipped.append(event_id)
                elif outcome.status is EventStatus.DELIVERED:
                    report.delivered.append(event_id)
                elif outcome.status is EventStatus.DEAD:
                    report.dead.append(event_id)
                else:
                    report.retrying.append(event_id)
        finally:
            self.close()
        return report

    def deliver(self, record: OutboxRecord) -> OutboxRecord | None:
        """One attempt for one event; ``None`` when another dispatcher holds it.

        Raises:
            StoreUnavailable: the outbox could not be read or written.
        """
        fresh = self.store.get_event(record.event.event_id)
        now = self._clock()
        if fresh.status is not EventStatus.PENDING or fresh.next_attempt_at > now:
            return None  # the listing lagged, or another dispatcher moved it on
        wanted = [hook for hook in self.config.webhooks if hook.wants(fresh.event.type.value)]
        targets = [hook for hook in wanted if hook.name not in fresh.delivered_to]
        attempts = fresh.attempts + 1
        lease_ms = int((self.config.timeout_seconds * max(1, len(targets)) + 30) * 1000)
        claim = fresh.model_copy(update={"attempts": attempts, "next_attempt_at": now + lease_ms})
        if not self.store.update_delivery(claim, expected_attempts=fresh.attempts):
            return None
        delivered = list(fresh.delivered_to)
        errors: list[str] = []
        for hook in targets:
            error = self._post(hook, fresh)
            if error is None:
                delivered.append(hook.name)
            else:
                errors.append(f"{hook.name}: {error}")
        if not errors:
            status, next_at, last_error = EventStatus.DELIVERED, now, None
        elif attempts >= self.config.max_attempts:
            status, next_at, last_error = EventStatus.DEAD, now, "; ".join(errors)
        else:
            status = EventStatus.PENDING
            next_at = self._clock() + self.backoff_ms(attempts)
            last_error = "; ".join(errors)
        outcome = claim.model_copy(
            update={
                "status": status,
                "next_attempt_at": next_at,
                "last_error": None if last_error is None else last_error[:MAX_ERROR],
                "delivered_to": delivered,
            }
        )
        if not self.store.update_delivery(outcome, expected_attempts=attempts):
            # The lease ran out and another dispatcher took the event: its outcome stands.
            return None
        if status is EventStatus.DEAD:
            log.warning("event %s is dead after %d attempts", fresh.event.event_id, attempts)
        return outcome

    def _post(self, hook: Webhook, record: OutboxRecord) -> str | None:
        """POST one event to one webhook; the error text, or ``None`` on a 2xx answer."""
        try:
            target = resolve_target(
                hook.url,
                allow_http_loopback=self.config.allow_http_loopback,
                resolver=self._resolver,
            )
            secret = hook.signing_secret()
        except InvalidInput as error:
            return error.message
        event = record.event
        body = event.model_dump_json(by_alias=True).encode()
        headers = signed_headers(
            secret, event.event_id, event.type.value, self._clock() // 1000, body
        )
        headers["Host"] = target.host_header()
        headers["User-Agent"] = USER_AGENT
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            response = self._http().post(
                target.url(), content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"[:MAX_ERROR]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


def deliver_pending(
    store: OutboxStore, config: EventsConfig, *, limit: int, budget_seconds: float
) -> DeliveryReport:
    """A bounded pass for the API process after a registry change; never raises."""
    try:
        return Dispatcher(store, config).deliver_due(limit=limit, budget_seconds=budget_seconds)
    except TrackingError as error:
        log.warning("event delivery pass failed: %s", error.code)
        return DeliveryReport()
