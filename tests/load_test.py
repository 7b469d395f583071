"""Locust load test of the serving API: mixed predict, health and read traffic.

    LOAD_API_KEY=<key with predict+read scopes> \\
        locust -f tests/load_test.py --headless -u 16 -r 16 -t 60s --host http://127.0.0.1:8000

``make load`` (``bench/load_run.py``) does it all on a throw-away store: it trains and promotes
the demo churn model, creates a one-off key, starts ``python -m functions.api.serve`` on
127.0.0.1, runs this file headless for 60 s and prints req/s and p50/p95/p99 per endpoint.

Every answer is checked, not just its status: a request counts as a success only when it is a
200 whose JSON has the documented shape (a prediction's probability is in [0, 1], a batch answers
every row in order, /health says ok, the listings hold the demo model's experiment, run and
version). This file imports only the standard library and locust, so it runs from locust's own
virtual environment (``.venv/locust``, see the Makefile) as well as from any other.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, constant, events, stats, task

API_KEY_ENV = "LOAD_API_KEY"
MODEL = "churn"  # the served model, and the demo experiment training logs to
BATCH_ROWS = (10, 100)  # rows per batch request, inclusive
RISK_LEVELS = frozenset({"low", "medium", "high"})
VERSION_LABEL = re.compile(r"^v[0-9]+$")
OPTIONAL_FEATURES = (
    "days_since_install",
    "sessions_prev_7d",
    "avg_session_minutes",
    "friends_count",
    "level",
    "iap_spend_30d",
    "days_since_last_login",
)
SEED_REQUEST = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}

#: Relative task weights: predictions dominate, as in production; reads and probes share the rest.
WEIGHTS = {
    "predict_one": 12,
    "predict_batch": 2,
    "health": 2,
    "ready": 1,
    "list_models": 1,
    "list_versions": 1,
    "list_experiments": 1,
    "list_runs": 1,
}

if not os.environ.get(API_KEY_ENV):
    logging.getLogger(__name__).warning(
        "%s is not set: predict and read requests will fail with 401", API_KEY_ENV
    )

Body = Any  # a decoded JSON answer
Check = Callable[[Body], str | None]


@events.test_stop.add_listener
def _let_the_csv_catch_up(environment: Any, **_: Any) -> None:
    """Give ``--csv`` one more write once every user has stopped.

    Locust rewrites the ``--csv`` files every ``CSV_STATS_INTERVAL_SEC`` (1 s) and not again at
    exit, so the requests of the last interval were missing from ``_stats.csv`` (18 % of a 5 s
    run here; locust issues #1806 and #2299). ``test_stop`` fires after the users have stopped;
    waiting here (``time.sleep`` is gevent's under locust) lets the writer catch up.
    """
    options = getattr(environment, "parsed_options", None)
    if getattr(options, "csv_prefix", None):
        time.sleep(stats.CSV_STATS_INTERVAL_SEC + 0.5)


# -- request bodies ------------------------------------------------------------------------------


def player_row(rng: random.Random) -> dict[str, Any]:
    """One plausible player, loosely following ``models/churn/data.py``'s generator.

    A latent engagement drives sessions, session length, purchases and the rest, so rows look
    like real telemetry (heavy-tailed playtime, mostly non-payers). About one row in four carries
    only the three required features, like the seed request; the others include a random subset
    of the optional ones. Every value is inside ``ChurnFeatures``' bounds.
    """
    engagement = rng.gauss(0.0, 1.0)
    sessions = min(int(rng.lognormvariate(1.3 + 0.7 * engagement, 0.6)), 10_000)
    avg_minutes = min(rng.lognormvariate(2.6 + 0.25 * engagement, 0.6), 300.0)
    payer = rng.random() < 1.0 / (1.0 + math.exp(2.2 - 0.9 * engagement))
    row: dict[str, Any] = {
        "player_id": f"p_{rng.randrange(10**8)}",
        "sessions_7d": sessions,
        "playtime_7d": round(min(sessions * avg_minutes * rng.lognormvariate(0, 0.25), 10_080), 1),
        "iap_count": rng.randint(1, 6) if payer else 0,
    }
    if rng.random() < 0.25:
        return row
    installed = min(int(rng.lognormvariate(4.0, 1.2)) + 1, 3000)  # days since install
    optional = {
        "days_since_install": installed,
        "sessions_prev_7d": min(int(rng.lognormvariate(1.3 + 0.7 * engagement, 0.6)), 10_000),
        "avg_session_minutes": round(avg_minutes, 2),
        "friends_count": min(int(rng.expovariate(1.0 / (3.0 + 3.0 * max(engagement, -0.9)))), 5000),
        "level": min(int(math.sqrt(installed) * math.exp(0.4 * engagement) * 1.6) + 1, 500),
        "iap_spend_30d": round(rng.lognormvariate(2.0, 1.1), 2) if payer else 0.0,
        "days_since_last_login": rng.randint(0, 6) if sessions else 7 + int(rng.expovariate(0.15)),
    }
    for name in OPTIONAL_FEATURES:
        if rng.random() < 0.7:
            row[name] = optional[name]
    return row


# -- response checks: None when the body is right, else what is wrong ----------------------------
# Messages name the kind of problem, never per-request values (player ids, request ids, numbers):
# locust groups failures by message, so a stable message is one line of the report, not thousands.


def check_prediction(body: Body, player_id: str) -> str | None:
    if not isinstance(body, dict):
        return f"prediction is a {type(body).__name__}, not an object"
    if set(body) != {"player_id", "churn_probability", "risk_level", "model_version"}:
        return f"prediction has fields {sorted(body)}"
    if body["player_id"] != player_id:
        return "prediction is for another player_id (or out of order)"
    probability = body["churn_probability"]
    if isinstance(probability, bool) or not isinstance(probability, int | float):
        return "churn_probability is not a number"
    if not 0.0 <= probability <= 1.0:
        return "churn_probability is outside [0, 1]"
    if body["risk_level"] not in RISK_LEVELS:
        return f"risk_level is not one of {sorted(RISK_LEVELS)}"
    if not isinstance(body["model_version"], str) or not VERSION_LABEL.match(body["model_version"]):
        return "model_version is not like v3"
    return None


def check_batch(body: Body, player_ids: list[str]) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        return "batch answer has no predictions list"
    predictions = body["predictions"]
    if len(predictions) != len(player_ids):
        return "batch answer has not one prediction per row"
    for prediction, player_id in zip(predictions, player_ids, strict=True):
        problem = check_prediction(prediction, player_id)
        if problem is not None:
            return f"batch: {problem}"
        if prediction["model_version"] != body.get("model_version"):
            return "batch: a prediction's model_version differs from the batch's"
    return None


def check_health(body: Body) -> str | None:
    if not isinstance(body, dict) or (body.get("status"), body.get("degraded")) != ("ok", False):
        status = body.get("status") if isinstance(body, dict) else None
        return f"health status is {status!r}, not 'ok' and not degraded"
    if not isinstance(body.get("models"), list) or not body["models"]:
        return "health lists no models"
    return None


def check_ready(body: Body) -> str | None:
    ready = isinstance(body, dict) and body.get("ready") is True and not body.get("unavailable")
    return None if ready else "ready is not true"


def _page_items(body: Body) -> list[Any] | None:
    if not isinstance(body, dict) or "next_token" not in body:
        return None
    items = body.get("items")
    return items if isinstance(items, list) else None


def check_models(body: Body) -> str | None:
    items = _page_items(body)
    if items is None:
        return "not a page (items, next_token)"
    model = next((m for m in items if isinstance(m, dict) and m.get("name") == MODEL), None)
    if model is None:
        return f"model {MODEL!r} is not listed"
    if not isinstance(model.get("aliases"), dict) or "production" not in model["aliases"]:
        return f"model {MODEL!r} has no production alias"
    return None


def check_versions(body: Body) -> str | None:
    items = _page_items(body)
    if not items:
        return "no versions listed (or not a page)"
    for version in items:
        if not isinstance(version, dict) or version.get("name") != MODEL:
            return f"a listed version is not a {MODEL!r} version"
        if isinstance(version.get("version"), bool) or not isinstance(version.get("version"), int):
            return "a listed version has no version number"
    return None


def check_experiments(body: Body) -> str | None:
    items = _page_items(body)
    if items is None:
        return "not a page (items, next_token)"
    if not any(isinstance(e, dict) and e.get("name") == MODEL for e in items):
        return f"experiment {MODEL!r} is not listed"
    return None


def check_runs(body: Body) -> str | None:
    items = _page_items(body)
    if not items:
        return "no runs listed (or not a page)"
    if not all(isinstance(run, dict) and isinstance(run.get("run_id"), str) for run in items):
        return "a listed run has no run_id"
    return None


def judge(status: int, text: str | None, check: Check) -> str | None:
    """None for a 200 whose JSON passes ``check``; otherwise why the request failed."""
    try:
        body = json.loads(text or "")
    except ValueError:
        body = None
    if status != 200:
        # The API's error code and message (never its request_id); 0 is a connection error.
        error = body.get("error") if isinstance(body, dict) else None
        detail = (
            f"{error.get('code')}: {error.get('message')}"
            if isinstance(error, dict)
            else "no error body"
        )
        hint = " (does LOAD_API_KEY have predict and read scopes?)" if status in (401, 403) else ""
        return f"HTTP {status} {detail[:200]}{hint}"
    if body is None:
        return "HTTP 200 whose body is not JSON"
    return check(body)


# -- the simulated client -------------------------------------------------------------------------


class ApiUser(FastHttpUser):
    """A client of the serving API: scores players, probes health, reads the registry."""

    wait_time = constant(0)  # closed loop: each user sends its next request as soon as it can

    def on_start(self) -> None:
        self.rng = random.Random()
        self.auth = {"X-API-Key": os.environ.get(API_KEY_ENV, "")}

    def _call(self, method: str, path: str, check: Check, body: Any = None) -> None:
        headers = self.auth if not path.startswith(("/health", "/ready")) else None
        with self.client.request(
            method, path, json=body, headers=headers, catch_response=True
        ) as response:
            problem = judge(response.status_code, response.text, check)
            if problem is None:
                response.success()
            else:
                response.failure(problem)

    @task(WEIGHTS["predict_one"])
    def predict_one(self) -> None:
        row = dict(SEED_REQUEST) if self.rng.random() < 0.05 else player_row(self.rng)
        self._call(
            "POST", "/predict/churn", lambda body: check_prediction(body, row["player_id"]), row
        )

    @task(WEIGHTS["predict_batch"])
    def predict_batch(self) -> None:
        rows = [player_row(self.rng) for _ in range(self.rng.randint(*BATCH_ROWS))]
        ids = [row["player_id"] for row in rows]
        self._call(
            "POST", "/predict/churn/batch", lambda body: check_batch(body, ids), {"rows": rows}
        )

    @task(WEIGHTS["health"])
    def health(self) -> None:
        self._call("GET", "/health", check_health)

    @task(WEIGHTS["ready"])
    def ready(self) -> None:
        self._call("GET", "/ready", check_ready)

    @task(WEIGHTS["list_models"])
    def list_models(self) -> None:
        self._call("GET", "/models", check_models)

    @task(WEIGHTS["list_versions"])
    def list_versions(self) -> None:
        self._call("GET", f"/models/{MODEL}/versions", check_versions)

    @task(WEIGHTS["list_experiments"])
    def list_experiments(self) -> None:
        self._call("GET", "/experiments", check_experiments)

    @task(WEIGHTS["list_runs"])
    def list_runs(self) -> None:
        self._call("GET", f"/experiments/{MODEL}/runs", check_runs)
