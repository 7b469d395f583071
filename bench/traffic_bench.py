"""The predict path under a traffic policy, against the same app with no policy, same run.

Trains churn three times into a throw-away embedded store (v1 production, v2 challenger, v3
staging) and builds three apps on it, with auth, the request middleware and metrics on:

    none     no policy: production answers everything (the baseline)
    split    production 90 / challenger 10, sticky on player_id
    shadow   the same split, and staging shadows every request (scored after the answer)

Each request goes straight into the ASGI app (no sockets: the ratio is the app's own cost, which
is what a policy adds), with a different player each time so both variants answer. A round's time
runs until the shadow worker has scored every queued row (its CPU is part of the cost). Single rows
and 100-row batches; ``--rounds`` rounds, the apps in a rotating order; per scenario the median
us/request and the ratio of throughputs against ``none``.

    python bench/traffic_bench.py [--rounds 5] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving_bench import _drive  # noqa: E402


def _row(index: int, rng: random.Random) -> dict[str, Any]:
    return {"player_id": f"p_{index}", "sessions_7d": rng.randint(0, 30),
            "playtime_7d": round(rng.uniform(0, 300), 1),
            "iap_count": rng.randint(0, 5)}  # fmt: skip


def build(folder: Path) -> tuple[dict[str, Any], str]:
    import hashlib
    import json
    import logging

    from functions.api.main import create_app
    from functions.api.observability import logger
    from functions.api.settings import ApiSettings
    from models.churn.train import TrainConfig, run_training
    from tracking import ExperimentLogger, ModelRegistry

    logger.setLevel(logging.WARNING)  # the request log line is written, but not to a terminal
    handler: Any = logger.registered_handler
    handler.setStream((folder / "requests.log").open("w"))
    tracking = ExperimentLogger(f"sqlite:///{folder / 't.db'}", f"file://{folder / 'a'}")
    registry = ModelRegistry(store=tracking.metadata, artifact_store=tracking.artifacts)  # type: ignore[arg-type]
    config = TrainConfig(rows=5000, n_estimators=60)
    for seed, promote in ((11, "production"), (12, None), (13, "staging")):
        run_training(TrainConfig(**{**config.__dict__, "seed": seed}), promote=promote,
                     logger=tracking, registry=registry, show_progress=False,
                     data_dir=folder / "data")  # fmt: skip
    registry.promote("churn", 2, to="challenger")
    key = "bench-key"
    keys = json.dumps([{"name": "bench", "scopes": ["predict"],
                        "sha256": hashlib.sha256(key.encode()).hexdigest()}])  # fmt: skip

    def app() -> Any:
        return create_app(ApiSettings(
            TRACKING_URI=f"sqlite:///{folder / 't.db'}", ARTIFACT_URI=f"file://{folder / 'a'}",
            API_KEYS=keys, MODEL_CACHE_DIR=str(folder / "cache"), MODEL_REFRESH_SECONDS=3600,
        ))  # fmt: skip

    apps = {"none": app()}
    weights = {"production": 90, "challenger": 10}
    registry.set_traffic("churn", weights=weights, sticky="player_id", reason="bench")
    apps["split"] = app()
    registry.set_traffic("churn", weights=weights, shadow=["staging"], sticky="player_id",
                         reason="bench")  # fmt: skip
    apps["shadow"] = app()
    return apps, key


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="single rows per round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        apps, key = build(Path(tmp))
        rng = random.Random(3)
        singles = [json.dumps(_row(i, rng)).encode() for i in range(args.requests)]
        batches = [json.dumps({"rows": [_row(i * 100 + j, rng) for j in range(100)]}).encode()
                   for i in range(max(1, args.requests // 20))]  # fmt: skip
        scenarios = (("1 row", "/predict/churn", singles),
                     ("100 rows", "/predict/churn/batch", batches))  # fmt: skip

        async def drive(app: Any, path: str, bodies: list[bytes]) -> float:
            started = time.perf_counter()
            for body in bodies:
                status = await _drive(app, path, body, key)
                if status != 200:
                    raise SystemExit(f"{path} answered {status}")
            # Inside the timing: the shadow worker's rows must all be scored too.
            if not app.state.shadow.drain(timeout=60):
                raise SystemExit("the shadow queue did not drain")
            return (time.perf_counter() - started) / len(bodies) * 1e6

        print(f"traffic policy cost, in-process ASGI, {args.rounds} rounds (median us/request)")
        print(f"{'scenario':<10} {'app':<8} {'us/req':>8} {'vs none':>8}")
        names = list(apps)
        for title, path, bodies in scenarios:
            for app in apps.values():
                asyncio.run(drive(app, path, bodies[:50]))  # warm-up
            timings: dict[str, list[float]] = {name: [] for name in names}
            for round_ in range(args.rounds):
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in order:
                    timings[name].append(asyncio.run(drive(apps[name], path, bodies)))
            base = statistics.median(timings["none"])
            for name in names:
                median = statistics.median(timings[name])
                print(f"{title:<10} {name:<8} {median:>8.0f} {base / median:>7.2f}x")


if __name__ == "__main__":
    main()
