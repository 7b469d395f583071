"""Webhook delivery from the API process: a bounded pass after each registry change.

The route's change (and its outbox event) is committed before the pass starts; the pass runs
as a background task, so a webhook never changes the answer. Under uvicorn the answer is sent
first; on Lambda, Mangum returns when the task is done, so the pass is bounded by
``EVENT_DELIVERY_BUDGET_SECONDS`` plus one attempt (``EVENT_WEBHOOK_TIMEOUT_SECONDS`` per
webhook). Events a pass does not reach wait for the next change or ``tracking events deliver``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request

from functions.api.settings import ApiSettings
from tracking.config import EventsConfig
from tracking.stores.ports.outbox import OutboxStore

#: Events one pass may try.
PASS_LIMIT = 10


class EventDelivery:
    """Schedules a delivery pass when webhooks are configured."""

    def __init__(
        self,
        store: OutboxStore,
        config: EventsConfig,
        budget_seconds: float,
        background: BackgroundTasks,
    ) -> None:
        self._store = store
        self._config = config
        self._budget = budget_seconds
        self._background = background

    def after_change(self) -> None:
        if not self._config.webhooks:
            return
        from tracking.events.dispatch import deliver_pending  # httpx only when it is used

        self._background.add_task(
            deliver_pending,
            self._store,
            self._config,
            limit=PASS_LIMIT,
            budget_seconds=self._budget,
        )


async def _delivery(request: Request, background: BackgroundTasks) -> EventDelivery:
    state = request.app.state
    config: EventsConfig | None = getattr(state, "events_config", None)
    settings: ApiSettings = state.settings
    if config is None:
        config = settings.events_config()
        state.events_config = config
    return EventDelivery(
        state.registry.store, config, settings.event_delivery_budget_seconds, background
    )


DeliveryDep = Annotated[EventDelivery, Depends(_delivery)]
