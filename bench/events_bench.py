"""Registry events: what the outbox costs a move, and how fast webhooks are delivered.

Measured in the same run on SQLite (the embedded store, a file in a temporary folder):

- ``move``: ``ModelRegistry.promote`` alternating two versions into production, each move one
  transaction that now also inserts its outbox row; the baseline is the same moves with the
  outbox insert replaced by nothing (patched in this process only);
- ``traffic``: ``set_traffic`` with two weighted aliases and one shadow;
- ``deliver``: ``Dispatcher.deliver_due`` POSTing every pending event to a receiver on 127.0.0.1
  (signature, claim and outcome writes included), events per second.

    python bench/events_bench.py [--moves 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.models_fixtures import save_model_files
from tracking import ExperimentLogger, ModelRegistry
from tracking.config import EventsConfig
from tracking.events.dispatch import Dispatcher
from tracking.stores.sqlite import registry as sqlite_registry


def _registry(folder: Path) -> ModelRegistry:
    logger = ExperimentLogger(f"sqlite:///{folder / 't.db'}", f"file://{folder / 'a'}")
    files = save_model_files(folder / "files")
    run = logger.log_experiment("churn", artifacts={"model": files["json"]})
    registry = ModelRegistry(
        store=logger.metadata,  # type: ignore[arg-type]
        artifact_store=logger.artifacts,
        actor="bench",
    )
    for _ in range(3):
        registry.register_model("churn", run.run_id, "model")
    registry.promote("churn", 2, to="challenger")
    registry.promote("churn", 3, to="staging")
    return registry


def _per_op(action: Callable[[int], Any], count: int) -> float:
    started = time.perf_counter()
    for number in range(count):
        action(number)
    return (time.perf_counter() - started) / count * 1e6


def _receiver() -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--moves", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    original = sqlite_registry.insert_event
    with_outbox: list[float] = []
    without: list[float] = []
    traffic: list[float] = []
    delivered_per_s: list[float] = []
    server, url = _receiver()
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as raw:
            registry = _registry(Path(raw))

            def move(n: int, registry: ModelRegistry = registry) -> None:
                registry.promote("churn", 1 + n % 2, to="production")

            move(0)  # warm up
            # Interleaved blocks, so a history that grows during the run weighs on both alike.
            block = 20
            base_us = new_us = 0.0
            for _ in range(0, args.moves, block):
                sqlite_registry.insert_event = lambda conn, record: None  # type: ignore[assignment]
                base_us += _per_op(move, block) * block
                sqlite_registry.insert_event = original
                new_us += _per_op(move, block) * block
            without.append(base_us / args.moves)
            with_outbox.append(new_us / args.moves)

            def split(n: int, registry: ModelRegistry = registry) -> None:
                share = 1 + n % 50
                registry.set_traffic(
                    "churn",
                    weights={"production": 100 - share, "challenger": share},
                    shadow=["staging"],
                )

            traffic.append(_per_op(split, args.moves))
            hooks = [{"name": "bench", "url": url, "secret": "bench-secret-123456"}]
            config = EventsConfig(
                EVENT_WEBHOOKS=json.dumps(hooks), EVENT_WEBHOOK_ALLOW_HTTP_LOOPBACK=True
            )
            dispatcher = Dispatcher(registry.store, config)
            pending = 0
            started = time.perf_counter()
            while True:
                report = dispatcher.deliver_due(limit=100)
                if not report.delivered:
                    break
                pending += len(report.delivered)
            delivered_per_s.append(pending / (time.perf_counter() - started))
    server.shutdown()
    base, new = statistics.median(without), statistics.median(with_outbox)
    print(f"move without outbox   {base:8.0f} us/op (baseline)")
    print(f"move with outbox      {new:8.0f} us/op  ratio {new / base:.2f}x")
    print(f"set_traffic           {statistics.median(traffic):8.0f} us/op")
    print(f"webhook delivery      {statistics.median(delivered_per_s):8.0f} events/s (loopback)")


if __name__ == "__main__":
    main()
