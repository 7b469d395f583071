"""A canary from 5 % to 100 % and a rollback, end to end, printing what docs/experiments.md shows.

Everything is real except the players, who come from the churn generator: a throw-away embedded
store, the API app (auth, middleware, model cache, prediction log, shadow worker) driven in
process, the registry's traffic routes over HTTP, labels posted to ``/feedback/churn`` and the
``tracking`` command line for the policy, the report and drift.

    python examples/canary_walkthrough.py [--players 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "walkthrough-admin-key"


def _keys() -> str:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    return json.dumps([{"name": "release-bot", "scopes": ["predict", "read", "admin"],
                        "sha256": digest}])  # fmt: skip


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The request log (one JSON line per request) goes to a file, not to the walk-through."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from tracking.cli import app

    result = CliRunner().invoke(app, list(args))
    if result.exit_code:
        raise SystemExit(f"tracking {' '.join(args)} failed:\n{result.output}")
    return result.output.rstrip()


def _show(title: str, text: str) -> None:
    print(f"\n$ {title}\n{text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="canary-"))
    os.environ.update(TRACKING_URI=f"sqlite:///{folder / 't.db'}",
                      ARTIFACT_URI=f"file://{folder / 'a'}",
                      TRACKING_ACTOR="release-bot")  # fmt: skip

    from fastapi.testclient import TestClient

    from functions.api.main import create_app
    from functions.api.settings import ApiSettings
    from models.churn.data import generate
    from models.churn.features import FEATURE_NAMES
    from models.churn.train import TrainConfig, run_training
    from tracking import ExperimentLogger, ModelRegistry

    logger = ExperimentLogger()
    registry = ModelRegistry(store=logger.metadata, artifact_store=logger.artifacts)  # type: ignore[arg-type]
    with _quiet():
        # v1: stumps on little data in production; v2: the candidate, deeper, longer, more data.
        run_training(TrainConfig(rows=3000, max_depth=1, n_estimators=8, seed=1),
                     promote="production", logger=logger, registry=registry,
                     show_progress=False, data_dir=folder / "data")  # fmt: skip
        run_training(TrainConfig(rows=8000, max_depth=5, n_estimators=200, seed=2),
                     logger=logger, registry=registry, show_progress=False,
                     data_dir=folder / "data")  # fmt: skip
    registry.promote("churn", 2, to="challenger", reason="candidate for the canary")
    settings = ApiSettings(API_KEYS=_keys(), PREDICTION_LOG_FEATURES=True,
                           MODEL_REFRESH_SECONDS=3600,
                           MODEL_CACHE_DIR=str(folder / "cache"))  # fmt: skip
    app = create_app(settings)
    client = TestClient(app)
    headers = {"X-API-Key": KEY}
    # Live players are drawn like the training data, except that this week they play a little
    # more (a shift drift should see in sessions_7d and playtime_7d, not in the others).
    players = generate(args.players, seed=99)
    rows = []
    for index, player in enumerate(players.player_ids):
        values = dict(zip(FEATURE_NAMES, players.features[index].tolist(), strict=True))
        row: dict[str, Any] = {"player_id": player}
        for name, value in values.items():
            if not math.isnan(value):
                row[name] = int(value) if name in {"sessions_7d", "iap_count"} else value
        row["sessions_7d"] = int(row["sessions_7d"] * 1.5) + 1
        row["playtime_7d"] = round(row["playtime_7d"] * 1.4, 1)
        rows.append(row)
    labels = {p: int(y) for p, y in zip(players.player_ids, players.churned, strict=True)}

    def refresh() -> None:
        for state in app.state.model_cache.states.values():
            state.checked_at = float("-inf")

    def serve() -> dict[str, int]:
        counts: dict[str, int] = {}
        with _quiet():
            for row in rows:
                answer = client.post("/predict/churn", json=row, headers=headers)
                assert answer.status_code == 200, answer.text
                variant = answer.headers["X-Model-Variant"]
                counts[variant] = counts.get(variant, 0) + 1
            app.state.shadow.drain(30)
            app.state.prediction_log.flush(10)
        return counts

    def set_traffic(weights: dict[str, int], reason: str, shadow: list[str] | None = None) -> None:
        body = {"weights": weights, "shadow": shadow or [], "sticky": "player_id",
                "reason": reason}  # fmt: skip
        with _quiet():
            answer = client.put("/models/churn/traffic", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        refresh()

    # 1. 5 % of players to the challenger.
    set_traffic({"production": 95, "challenger": 5}, "canary 5%")
    _show("tracking models traffic show churn", _cli("models", "traffic", "show", "churn"))
    print(f"\nserved: {serve()}")
    feedback = [{"key": player, "label": label} for player, label in labels.items()]
    with _quiet():
        for start in range(0, len(feedback), 1000):
            answer = client.post("/feedback/churn", json=feedback[start:start + 1000],
                                 headers=headers)  # fmt: skip
            assert answer.status_code == 202, answer.text
    _show("tracking ab churn --since 1h", _cli("ab", "churn", "--since", "1h"))
    _show("tracking drift churn --since 1h", _cli("drift", "churn", "--since", "1h"))

    # 2. 50 %, then 100 %, then make it production and drop the policy.
    set_traffic({"production": 50, "challenger": 50}, "canary 50%")
    print(f"\n50 %: served {serve()}")
    set_traffic({"challenger": 100}, "canary 100%")
    print(f"100 %: served {serve()}")
    _show("tracking models promote churn 2 --to production --reason 'canary passed'",
          _cli("models", "promote", "churn", "2", "--to", "production", "--reason",
               "canary passed"))  # fmt: skip
    _show("tracking models traffic clear churn --reason 'v2 is production'",
          _cli("models", "traffic", "clear", "churn", "--reason", "v2 is production"))  # fmt: skip
    refresh()
    print(f"\nafter the promotion: served {serve()}")

    # 3. Something is wrong after all: roll back.
    _show("tracking models rollback churn --reason 'support tickets'",
          _cli("models", "rollback", "churn", "--reason", "support tickets"))  # fmt: skip
    refresh()
    print(f"\nafter the rollback: served {serve()}")
    with _quiet():
        version = client.post("/predict/churn", json=rows[0], headers=headers).json()
    print(f"production answers with {version['model_version']}")
    _show("tracking models history churn", _cli("models", "history", "churn"))
    _show("tracking events list", _cli("events", "list"))


if __name__ == "__main__":
    main()
