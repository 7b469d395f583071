"""Serving throughput and latency of the API against a floor measured in the same run.

Sets up a throw-away embedded store (SQLite + a folder in a temporary directory), trains a small
churn model into it (``python -m models.churn.train --rows 5000 --promote production``) and
creates an API key. Then it starts, each with uvicorn, one worker, on 127.0.0.1:

    ours   the image's command, ``python -m functions.api.serve`` (functions.api.main:app under
           uvicorn, its start-up heap frozen), with auth, the request middleware (request id,
           body limit, Prometheus metrics, one JSON log line per request), the model cache and
           the prediction log
    floor  bench/_floor_app.py under the uvicorn command: FastAPI parsing the same body
           (pydantic-core model_validate_json) and calling inplace_predict on the same artifact,
           nothing else

The API does not call ``inplace_predict``: it makes the same C-API call without the wrapper's
per-call work (``models/xgboost_dense.py``), about 190 µs less per one-row prediction here. So
``--floor-predict direct`` gives the floor that call too, leaving the rest (auth, middleware,
metrics, logs, the model cache) as the only difference.

Two paths each: ``/predict/churn`` (the churn package's own schema and answer) and the generic
path, ``/predict/churn-generic``: the same artifact registered under a name no package declares,
so the API serves it from its flavor and stored signature (``models.tabular``); the floor parses
the same signature-built schema.

Cold start is measured first: process start to the first 200 from POST /predict/churn, polled
every 10 ms, median of ``--cold-starts`` starts (the last start of each app stays up for the load).
Load: {one row, 100-row batch} x {concurrency 1, 16}, ``--rounds`` rounds alternating which app
goes first, each run bounded by ``--requests`` and ``--seconds`` after a warm-up. Per scenario it
prints req/s (median of rounds), latency p50/p90/p99 over all rounds, the server's CPU time per
request (from /proc, insensitive to the client's share of the cores) and ours/floor ratios.

    python bench/serving_bench.py [--rounds 3] [--requests 2000] [--seconds 10]
                                  [--client raw|httpx] [--profile 2000] [--prediction-log on|off]
                                  [--floor-predict inplace_predict|direct] [--only TEXT]

``--profile N`` skips the load and instead drives both ASGI apps in-process, N requests each
(single row, then batch), under cProfile, and prints where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import hashlib
import io
import json
import os
import pstats
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"  # the only address this benchmark ever talks to
SINGLE_PATH = "/predict/churn"
BATCH_PATH = "/predict/churn/batch"
#: A model served by the generic path: registered with a signature, declared by no package.
GENERIC = "churn-generic"
GENERIC_PATH = f"/predict/{GENERIC}"
GENERIC_BATCH_PATH = f"{GENERIC_PATH}/batch"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- set-up -------------------------------------------------------------------------------------


@dataclass
class Store:
    folder: Path
    env: dict[str, str]  # TRACKING_URI, ARTIFACT_URI, API_KEYS, ... for the servers
    key: str
    floor_env: dict[str, str]
    label: str


def _row(index: int, rng: random.Random) -> dict[str, Any]:
    return {
        "player_id": f"p_{index}",
        "sessions_7d": rng.randint(0, 40),
        "playtime_7d": round(rng.uniform(0, 900), 2),
        "iap_count": rng.randint(0, 5),
        "days_since_install": rng.randint(1, 900),
        "sessions_prev_7d": rng.randint(0, 40),
        "avg_session_minutes": round(rng.uniform(1, 60), 2),
        "friends_count": rng.randint(0, 50),
        "level": rng.randint(1, 200),
        "iap_spend_30d": round(rng.uniform(0, 50), 2),
        "days_since_last_login": rng.randint(0, 30),
    }


def prepare_store(folder: Path) -> Store:
    """Train and promote a small model into ``folder``; make a key and the floor's environment."""
    env = {
        "TRACKING_URI": f"sqlite:///{folder}/tracking.db",  # absolute: four slashes
        "ARTIFACT_URI": f"file://{folder}/artifacts",
    }
    child_env = {**_base_env(), **env}
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "models.churn.train",
            "--rows",
            "5000",
            "--promote",
            "production",
            "--no-progress",
        ],
        cwd=folder,
        env=child_env,
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    print(
        f"trained and promoted a churn model (5000 rows) in {time.perf_counter() - started:.1f} s"
    )

    from models.churn.features import ChurnFeatures
    from tracking import ModelRegistry

    registry = ModelRegistry(env["TRACKING_URI"], env["ARTIFACT_URI"])
    version = registry.get_version_by_alias("churn", "production")
    generic = registry.register_model(
        GENERIC, version.run_id, "model", signature=ChurnFeatures,
        description="the churn artifact, served by the generic (signature) path",
    )  # fmt: skip
    registry.promote(GENERIC, generic.version, "production")
    artifact = registry.download(version, folder / "floor" / Path(version.artifact_uri).name)
    thresholds = version.metadata["risk_thresholds"]

    key = secrets.token_urlsafe(32)
    spec = {
        "name": "bench",
        "scopes": ["predict", "read", "admin"],
        "sha256": hashlib.sha256(key.encode()).hexdigest(),
    }
    env["API_KEYS"] = json.dumps([spec])
    env["MODEL_CACHE_DIR"] = str(folder / "model-cache")
    env["SERVED_MODELS"] = f"churn,{GENERIC}"
    floor_env = {
        "FLOOR_MODEL_PATH": str(artifact),
        "FLOOR_MODEL_LABEL": version.label,
        "FLOOR_MEDIUM": str(thresholds["medium"]),
        "FLOOR_HIGH": str(thresholds["high"]),
        "FLOOR_GENERIC_LABEL": generic.label,
    }
    return Store(folder, env, key, floor_env, version.label)


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA", "TRACKING_"))}
    env.pop("ARTIFACT_URI", None)
    env.pop("API_KEYS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    app: str  # uvicorn's module:attribute, or a module run with ``python -m`` (HOST, PORT)
    env: dict[str, str]
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    cold_starts: list[float] = field(default_factory=list)

    def start(self, probe: bytes) -> float:
        """Start the server; return seconds from process start to the first 200 for ``probe``."""
        self.stop()
        self.port = free_port()
        env = self.env
        if ":" in self.app:
            command = [sys.executable, "-m", "uvicorn", self.app, "--host", HOST,
                       "--port", str(self.port), "--workers", "1", "--no-access-log"]  # fmt: skip
        else:
            command = [sys.executable, "-m", self.app]
            env = {**env, "HOST": HOST, "PORT": str(self.port)}
        with self.log.open("ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = started + 120
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited with {self.process.returncode}; see {self.log}"
                )
            if _probe(self.port, probe) == 200:
                return time.perf_counter() - started
            time.sleep(0.010)
        raise SystemExit(f"{self.name} did not answer 200 within 120 s; see {self.log}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads) so far."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def _probe(port: int, request: bytes) -> int | None:
    """One request on a fresh connection; its status, or None when nothing answers yet."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(request)
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                head += chunk
            return int(head[9:12])
    except (OSError, ValueError):
        return None


def http_request(path: str, body: bytes, key: str, port: int) -> bytes:
    """A complete HTTP/1.1 request, serialised once so the load loop only writes bytes."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- load -------------------------------------------------------------------------------------


@dataclass
class RunResult:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def _raw_worker(
    port: int, request: bytes, budget: list[int], stop_at: float, out: list[float]
) -> int:
    """Keep-alive requests on one connection; raw asyncio streams keep the client cheap."""
    errors = 0
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while budget[0] > 0 and time.perf_counter() < stop_at:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.index(b"content-length:") + 15
            length = int(lower[at : lower.index(b"\r\n", at)])
            await reader.readexactly(length)
            out.append(time.perf_counter() - started)
            if head[9:12] != b"200":
                errors += 1
    finally:
        writer.close()
    return errors


async def _httpx_load(
    port: int,
    path: str,
    body: bytes,
    key: str,
    concurrency: int,
    budget: list[int],
    stop_at: float,
    out: list[float],
) -> int:
    import httpx

    headers = {"content-type": "application/json", "x-api-key": key}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits) as client:

        async def worker() -> int:
            errors = 0
            while budget[0] > 0 and time.perf_counter() < stop_at:
                budget[0] -= 1
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                out.append(time.perf_counter() - started)
                errors += response.status_code != 200
            return errors

        return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))


def run_load(
    server: Server,
    path: str,
    body: bytes,
    key: str,
    concurrency: int,
    requests: int,
    seconds: float,
    client: str,
) -> RunResult:
    async def load(budget_count: int, limit: float, out: list[float]) -> int:
        budget = [budget_count]
        stop_at = time.perf_counter() + limit
        if client == "httpx":
            return await _httpx_load(
                server.port, path, body, key, concurrency, budget, stop_at, out
            )
        request = http_request(path, body, key, server.port)
        workers = (
            _raw_worker(server.port, request, budget, stop_at, out) for _ in range(concurrency)
        )
        return sum(await asyncio.gather(*workers))

    # Warm-up: fresh connections, the allocator and the branch predictors; not measured.
    asyncio.run(load(max(50, 4 * concurrency), 3.0, []))
    latencies: list[float] = []
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    errors = asyncio.run(load(requests, seconds, latencies))
    elapsed = time.perf_counter() - started
    return RunResult(len(latencies), elapsed, latencies, errors, server.cpu_seconds() - cpu_before)


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# -- report -----------------------------------------------------------------------------------


def summarise(results: list[RunResult]) -> dict[str, float]:
    latencies = sorted(value for result in results for value in result.latencies)
    requests = sum(result.requests for result in results)
    return {
        "rps": statistics.median(result.rps for result in results),
        "p50": _percentile(latencies, 50) * 1000,
        "p90": _percentile(latencies, 90) * 1000,
        "p99": _percentile(latencies, 99) * 1000,
        "cpu_ms": sum(result.server_cpu for result in results) / requests * 1000,
        "errors": sum(result.errors for result in results),
    }


def check_same_answers(ours: Server, floor: Server, bodies: dict[str, bytes], key: str) -> None:
    """The floor must answer exactly what the API answers, or the comparison means nothing."""
    import httpx

    headers = {"content-type": "application/json", "x-api-key": key}
    for path, body in bodies.items():
        answers = [
            httpx.post(
                f"http://{HOST}:{server.port}{path}", content=body, headers=headers, timeout=10
            ).json()
            for server in (ours, floor)
        ]
        if answers[0] != answers[1]:
            raise SystemExit(f"{path}: the floor answers differently:\n{answers[0]}\n{answers[1]}")


def count_request_logs(log: Path) -> int:
    with log.open("rb") as lines:
        return sum(1 for line in lines if b'"message":"request"' in line)


def load_benchmark(args: argparse.Namespace, store: Store) -> None:
    rng = random.Random(7)
    single = json.dumps(_row(0, rng)).encode()
    batch = json.dumps({"rows": [_row(i, rng) for i in range(100)]}).encode()
    probe_body = single

    ours = Server(
        "ours", "functions.api.serve", {**_base_env(), **store.env}, store.folder / "ours.log"
    )
    floor = Server(
        "floor",
        "bench._floor_app:app",
        {**_base_env(), **store.floor_env},
        store.folder / "floor.log",
    )
    try:
        cold: dict[str, list[float]] = {"ours": [], "floor": []}
        for _ in range(args.cold_starts):
            for server in (ours, floor):
                # The probe needs the port, which the server only gets at start: build it with
                # a placeholder Host (uvicorn does not check it).
                probe = http_request(SINGLE_PATH, probe_body, store.key, 0)
                cold[server.name].append(server.start(probe))
        print(
            f"\ncold start, process start -> first 200 from POST {SINGLE_PATH} "
            f"(median of {args.cold_starts}, polled every 10 ms):"
        )
        for name, values in cold.items():
            listed = ", ".join(f"{v:.2f}" for v in values)
            print(f"  {name:5s} {statistics.median(values):6.2f} s   ({listed})")

        check_same_answers(
            ours, floor,
            {SINGLE_PATH: single, BATCH_PATH: batch, GENERIC_PATH: single,
             GENERIC_BATCH_PATH: batch},
            store.key,
        )  # fmt: skip
        logged_before = count_request_logs(ours.log)

        scenarios = [
            (label, path, body, concurrency)
            for label, path, body in (
                ("churn 1 row", SINGLE_PATH, single),
                ("churn 100 rows", BATCH_PATH, batch),
                ("generic 1 row", GENERIC_PATH, single),
                ("generic 100 rows", GENERIC_BATCH_PATH, batch),
            )
            for concurrency in (1, 16)
            if not args.only or any(part in f"{label} c={concurrency}" for part in args.only)
        ]
        if not scenarios:
            raise SystemExit(f"no scenario matches --only {args.only}")
        results: dict[tuple[int, str], list[RunResult]] = {}
        sent_to_ours = 0
        for round_index in range(args.rounds):
            # Alternate who goes first: on a small noisy machine, drift then hits both alike.
            order = (ours, floor) if round_index % 2 == 0 else (floor, ours)
            for index, (_label, path, body, concurrency) in enumerate(scenarios):
                for server in order:
                    result = run_load(
                        server,
                        path,
                        body,
                        store.key,
                        concurrency,
                        args.requests,
                        args.seconds,
                        args.client,
                    )
                    results.setdefault((index, server.name), []).append(result)
            print(f"round {round_index + 1}/{args.rounds} done", flush=True)
        for (_, name), runs in results.items():
            if name == "ours":
                sent_to_ours += sum(r.requests for r in runs)
        time.sleep(0.5)  # let the last log lines reach the file
        logged = count_request_logs(ours.log) - logged_before

        print(
            f"\nload: uvicorn, 1 worker, 127.0.0.1; client={args.client} on the same "
            f"{os.cpu_count()} cores (keep-alive, pre-serialised bodies);\n"
            f"{args.rounds} rounds x (<= {args.requests} requests or {args.seconds:g} s) after a "
            f"warm-up; req/s = median of rounds; latency over all rounds; server CPU per request "
            f"from /proc\n"
        )
        header = (
            f"{'scenario':<24}{'app':<7}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
            f"{'cpu ms/req':>12}{'err':>5}   ratio ours/floor"
        )
        print(header)
        print("-" * len(header))
        for index, (label, _path, _body, concurrency) in enumerate(scenarios):
            stats = {name: summarise(results[(index, name)]) for name in ("ours", "floor")}
            per_round = [
                o.rps / f.rps
                for o, f in zip(results[(index, "ours")], results[(index, "floor")], strict=True)
            ]
            for name in ("ours", "floor"):
                s = stats[name]
                line = (
                    f"{label + f' c={concurrency}':<24}{name:<7}{s['rps']:9.0f}{s['p50']:9.2f}"
                    f"{s['p90']:9.2f}{s['p99']:9.2f}{s['cpu_ms']:12.3f}{s['errors']:5.0f}"
                )
                if name == "ours":
                    rounds = ", ".join(f"{r:.2f}" for r in per_round)
                    line += (
                        f"   req/s {stats['ours']['rps'] / stats['floor']['rps']:.2f} "
                        f"(rounds {rounds}); cpu/req "
                        f"{stats['floor']['cpu_ms'] / stats['ours']['cpu_ms']:.2f}"
                    )
                print(line)
        print(
            f"\nrequest log lines written by ours: {logged} for {sent_to_ours} measured requests "
            f"(+ warm-ups)"
        )
        print(
            "ratio > 1 is ours faster; cpu/req ratio = floor CPU per request / ours (the same "
            "direction), the figure least disturbed by the client sharing the cores"
        )
    finally:
        ours.stop()
        floor.stop()


# -- profile ------------------------------------------------------------------------------------


async def _drive(app: Callable[..., Awaitable[None]], path: str, body: bytes, key: str) -> int:
    """One request straight into an ASGI app (no server, no sockets); returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": (HOST, 50000),
        "server": (HOST, 8000),
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"x-api-key", key.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a disconnect would only come after the response
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def profile(args: argparse.Namespace, store: Store) -> None:
    os.environ.update(store.env)
    os.environ.update(store.floor_env)
    from functions.api.main import create_app
    from functions.api.observability import logger
    from functions.api.settings import ApiSettings

    # The request log goes to a file, as it would to a captured stdout, not to this terminal:
    # off Lambda it is written to sys.stdout directly (observability._write_request_line), so
    # the requests run with stdout redirected; Powertools' handler gets the file too.
    log_file = (store.folder / "profile.log").open("w")
    handler: Any = logger.registered_handler
    handler.setStream(log_file)
    quiet = functools.partial(contextlib.redirect_stdout, log_file)

    ours = create_app(ApiSettings())  # reads the environment set above
    floor_module = __import__("bench._floor_app", fromlist=["app"])
    rng = random.Random(7)
    bodies = {
        SINGLE_PATH: json.dumps(_row(0, rng)).encode(),
        BATCH_PATH: json.dumps({"rows": [_row(i, rng) for i in range(100)]}).encode(),
    }
    bodies[GENERIC_PATH] = bodies[SINGLE_PATH]
    bodies[GENERIC_BATCH_PATH] = bodies[BATCH_PATH]

    async def drive_many(app: Any, path: str, body: bytes, n: int) -> None:
        for _ in range(n):
            status = await _drive(app, path, body, store.key)
            if status != 200:
                raise SystemExit(f"{path} answered {status}")

    for path, body in bodies.items():
        n = max(1, args.profile // 10) if path.endswith("/batch") else args.profile
        timings = {}
        for name, app in (("ours", ours), ("floor", floor_module.app)):
            with quiet():
                asyncio.run(drive_many(app, path, body, 50))  # warm-up
                started = time.perf_counter()
                asyncio.run(drive_many(app, path, body, n))
                timings[name] = (time.perf_counter() - started) / n * 1e6
        print(
            f"\n{path}: in-process, no sockets: ours {timings['ours']:.0f} us/request, "
            f"floor {timings['floor']:.0f} us/request "
            f"(ratio floor/ours {timings['floor'] / timings['ours']:.2f})"
        )
        profiler = cProfile.Profile()
        with quiet():
            profiler.enable()
            asyncio.run(drive_many(ours, path, body, n))
            profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(25)
        print(f"ours, {n} requests, top functions by own time:")
        print(text.getvalue()[-6000:])
    log_file.close()


# -- main ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="per run (app x scenario)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run, at most")
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="raw asyncio sockets (cheapest) or httpx.AsyncClient",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile N in-process requests per app instead of the load test",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    parser.add_argument(
        "--floor-predict",
        choices=("inplace_predict", "direct"),
        default="inplace_predict",
        help="the floor's model call: Booster.inplace_predict (the floor as defined) or the "
        "API's direct C-API call (models/xgboost_dense.py), which leaves only the rest to compare",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="run only the scenarios whose label (e.g. 'generic 100 rows c=16') contains TEXT; "
        "repeatable",
    )
    parser.add_argument(
        "--prediction-log",
        choices=("on", "off"),
        default="on",
        help="ours with the prediction log (a record per answered row; on by default in the "
        "product) or without it: auth, request log and metrics stay on either way",
    )
    args = parser.parse_args()
    if min(args.rounds, args.requests, args.cold_starts) < 1 or args.seconds <= 0:
        parser.error("--rounds, --requests, --cold-starts and --seconds must be positive")
    with workspace(args.keep) as folder:
        store = prepare_store(folder)
        store.env["PREDICTION_LOG_ENABLED"] = "true" if args.prediction_log == "on" else "false"
        store.floor_env["FLOOR_PREDICT"] = args.floor_predict
        print(f"ours: auth, request log and metrics on; prediction log {args.prediction_log}")
        print(f"floor: predicts with {args.floor_predict}")
        if args.profile:
            profile(args, store)
        else:
            load_benchmark(args, store)


if __name__ == "__main__":
    main()
