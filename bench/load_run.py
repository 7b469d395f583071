"""``make load``: a headless locust run of ``tests/load_test.py`` against a local API server.

On a throw-away embedded store (a temporary folder, never the checkout's ``.tracking/``) it

1. trains and promotes the demo churn model exactly as ``make run`` does (the default
   ``TrainConfig``, seed 42: ``python -m models.churn.train --promote production``, ~2 s);
2. creates a one-off API key with the ``predict`` and ``read`` scopes; the server gets only its
   SHA-256 (``API_KEYS``), locust gets the key in ``LOAD_API_KEY``; it is never printed;
3. starts ``python -m functions.api.serve`` on 127.0.0.1 on a free port (one uvicorn worker, the
   image's command) and waits for ``GET /ready``;
4. runs ``locust -f tests/load_test.py --headless -u USERS -r RATE -t SECONDS ... --csv PREFIX``;
5. stops the server with SIGINT (uvicorn's graceful shutdown) and prints, per endpoint and in
   aggregate, requests, failures, req/s and the median, p95 and p99 latency from locust's
   ``PREFIX_stats.csv``, then every distinct failure from ``PREFIX_failures.csv``.

It exits 1 when a request failed, none was made, locust failed or the server died. Locust runs
from its own virtual environment (``--locust``; ``make load`` installs ``requirements-load.txt``
into ``.venv/locust``) because it brings gevent and registers a pytest plugin, neither of which
belongs in the test environment.

    python bench/load_run.py [--users 16] [--spawn-rate 16] [--seconds 60] [--locust PATH]
                             [--results DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUST_FILE = ROOT / "tests" / "load_test.py"
DEFAULT_LOCUST = ROOT / ".venv" / "locust" / "bin" / "locust"
HOST = "127.0.0.1"  # the only address this run ever talks to
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
SCOPES = ["predict", "read"]
#: Variables of the caller that would point the server somewhere else (or at Lambda).
DROPPED_ENV = ("AWS_LAMBDA_", "TRACKING_", "ARTIFACT_URI", "API_KEYS", "MODEL_", "SERVED_")


@dataclass(frozen=True)
class Row:
    """One line of locust's ``_stats.csv`` (times in milliseconds)."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    average: float
    median: float
    p95: float
    p99: float
    maximum: float

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}".strip()


def read_stats(path: Path) -> list[Row]:
    """The endpoint rows of locust's ``_stats.csv``, with the ``Aggregated`` row last."""
    with path.open(newline="") as handle:
        rows = [
            Row(
                method=record["Type"],
                name=record["Name"],
                requests=int(record["Request Count"]),
                failures=int(record["Failure Count"]),
                rps=float(record["Requests/s"]),
                average=float(record["Average Response Time"]),
                median=_number(record["50%"]),
                p95=_number(record["95%"]),
                p99=_number(record["99%"]),
                maximum=float(record["Max Response Time"]),
            )
            for record in csv.DictReader(handle)
        ]
    if not rows or rows[-1].name != "Aggregated":
        raise ValueError(f"{path} has no Aggregated row")
    return rows


def _number(text: str) -> float:
    return float(text) if text not in ("", "N/A") else float("nan")


def read_failures(path: Path) -> list[tuple[str, int]]:
    """``("METHOD name: error", occurrences)`` for each distinct failure, most frequent first."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        found = [
            (f"{r['Method']} {r['Name']}: {r['Error']}", int(r["Occurrences"]))
            for r in csv.DictReader(handle)
        ]
    return sorted(found, key=lambda item: -item[1])


def format_table(rows: Sequence[Row]) -> str:
    width = max(len("endpoint"), *(len(row.label) for row in rows))
    header = (
        f"{'endpoint':<{width}}  {'requests':>9}  {'failures':>8}  {'req/s':>8}  "
        f"{'avg ms':>7}  {'p50 ms':>6}  {'p95 ms':>6}  {'p99 ms':>6}  {'max ms':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if row.name == "Aggregated":
            lines.append("-" * len(header))
        lines.append(
            f"{row.label:<{width}}  {row.requests:>9,}  {row.failures:>8,}  {row.rps:>8.1f}  "
            f"{row.average:>7.1f}  {row.median:>6.0f}  {row.p95:>6.0f}  {row.p99:>6.0f}  "
            f"{row.maximum:>7.0f}"
        )
    return "\n".join(lines)


def verdict(rows: Sequence[Row]) -> str | None:
    """None when the run passed (requests made, none failed); otherwise why it did not."""
    total = rows[-1]
    if total.requests == 0:
        return "no requests were made"
    if total.failures:
        return f"{total.failures} of {total.requests} requests failed"
    return None


def locust_command(
    locust: str | Path, *, host: str, users: int, spawn_rate: float, seconds: int, prefix: Path
) -> list[str]:
    return [
        str(locust),
        "-f",
        str(LOCUST_FILE),
        "--headless",
        "-u",
        str(users),
        "-r",
        f"{spawn_rate:g}",
        "-t",
        f"{seconds}s",
        "--host",
        host,
        "--only-summary",
        "--csv",
        str(prefix),
        "--exit-code-on-error",
        "1",
        "--stop-timeout",
        "10",  # let in-flight requests finish: a cut-off request would be neither good nor bad
    ]


# -- set-up -------------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def train(folder: Path, env: dict[str, str]) -> None:
    """``make run``'s model: the default config, promoted to production."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "models.churn.train", "--promote", "production"]
    with (folder / "train.log").open("wb") as log:
        done = subprocess.run(
            [*command, "--no-progress"], cwd=folder, env=env, stdout=log,
            stderr=subprocess.STDOUT, timeout=600, check=False,
        )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"training failed:\n{(folder / 'train.log').read_text()[-3000:]}")
    summary = (folder / "train.log").read_text().strip().splitlines()[-1]
    print(f"{summary} ({time.perf_counter() - started:.1f} s in all)")


def api_keys(key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return json.dumps([{"name": "load", "scopes": SCOPES, "sha256": digest}])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # 127.0.0.1 only
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@contextlib.contextmanager
def server(folder: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m functions.api.serve`` on 127.0.0.1, ready; stopped with SIGINT on exit."""
    port = free_port()
    env = {**env, "HOST": HOST, "PORT": str(port), "MODEL_CACHE_DIR": str(folder / "cache")}
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "functions.api.serve"], cwd=folder, env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://{HOST}:{port}"
    try:
        started = time.perf_counter()
        while _status(f"{url}/ready") != 200:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}:\n{_tail(log_path)}")
            if time.perf_counter() - started > READY_TIMEOUT:
                raise SystemExit(f"the server was not ready in {READY_TIMEOUT:.0f} s")
            time.sleep(0.05)
        print(f"server ready on {url} in {time.perf_counter() - started:.1f} s")
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                print(f"the server did not stop in {STOP_TIMEOUT:.0f} s and was killed")


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process, from /proc (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def log_warnings(path: Path, limit: int = 10) -> list[str]:
    """Locust's own warnings and errors (e.g. its "CPU usage above 90%" when it is the limit)."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [line for line in lines if "/WARNING/" in line or "/ERROR/" in line][:limit]


def locust_version(locust: str | Path) -> str:
    done = subprocess.run([str(locust), "--version"], capture_output=True, text=True, check=True)
    return (done.stdout or done.stderr).split(" from ")[0].strip()


# -- the run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace, folder: Path) -> int:
    locust = args.locust or (DEFAULT_LOCUST if DEFAULT_LOCUST.exists() else shutil.which("locust"))
    if not locust:
        raise SystemExit("locust not found: run `make load`, or pass --locust PATH")
    locust = Path(locust).absolute()  # locust runs in the temporary folder
    env = base_env()
    env["TRACKING_URI"] = f"sqlite:///{folder}/tracking.db"  # absolute: four slashes
    env["ARTIFACT_URI"] = f"file://{folder}/artifacts"
    train(folder, env)
    key = secrets.token_hex(24)  # lives only in this process and locust's environment
    prefix = folder / "locust"
    with server(folder, {**env, "API_KEYS": api_keys(key)}) as (url, process):
        command = locust_command(
            locust, host=url, users=args.users, spawn_rate=args.spawn_rate or args.users,
            seconds=args.seconds, prefix=prefix,
        )  # fmt: skip
        print(f"{locust_version(locust)}: {' '.join(command[1:])}")
        server_cpu = process_cpu_seconds(process.pid)
        locust_cpu = children_cpu_seconds()
        started = time.perf_counter()
        with (folder / "locust.log").open("wb") as log:
            done = subprocess.run(
                command, cwd=folder, env={**env, "LOAD_API_KEY": key}, stdout=log,
                stderr=subprocess.STDOUT, timeout=args.seconds + 120, check=False,
            )  # fmt: skip
        elapsed = time.perf_counter() - started
        locust_cpu = children_cpu_seconds() - locust_cpu
        server_after = process_cpu_seconds(process.pid)
        server_cpu = (
            None if server_cpu is None or server_after is None else server_after - server_cpu
        )
        server_alive = process.poll() is None
    stats = prefix.with_name(prefix.name + "_stats.csv")
    if not stats.exists():
        print(_tail(folder / "locust.log"))
        raise SystemExit(f"locust exited with {done.returncode} and wrote no {stats.name}")
    rows = read_stats(stats)
    print(
        f"\n{args.users} users, {args.seconds} s headless on {url} (locust ran {elapsed:.1f} s; "
        f"server: one uvicorn worker; {os.cpu_count()} CPUs shared with locust)\n"
    )
    print(format_table(rows))
    if server_cpu is not None and rows[-1].requests:
        print(
            f"\nCPU during the run: server {server_cpu:.1f} s "
            f"({server_cpu / elapsed:.0%} of one core, "
            f"{server_cpu / rows[-1].requests * 1e6:.0f} us per request), "
            f"locust {locust_cpu:.1f} s ({locust_cpu / elapsed:.0%} of one core)"
        )
    failures = read_failures(prefix.with_name(prefix.name + "_failures.csv"))
    if failures:
        print("\nFailures (locust groups them by message):")
    for message, count in failures[:20]:
        print(f"  {count:>7,} x {message}")
    for line in log_warnings(folder / "locust.log"):
        print(f"locust: {line}")
    problems = [p for p in [verdict(rows)] if p]
    if done.returncode:
        problems.append(f"locust exited with {done.returncode}")
    if not server_alive:
        problems.append("the server died during the run")
        print(f"server log (last lines):\n{_tail(folder / 'server.log', 15)}")
    print(f"\nFAILED: {'; '.join(problems)}" if problems else "\nPASSED: 0 failures")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=16, help="concurrent users (16)")
    parser.add_argument("--spawn-rate", type=float, default=0, help="users/s (all in 1 s)")
    parser.add_argument("--seconds", type=int, default=60, help="run time (60)")
    parser.add_argument("--locust", type=Path, help=f"locust executable ({DEFAULT_LOCUST})")
    parser.add_argument("--results", type=Path, help="keep the CSVs and logs in this folder")
    args = parser.parse_args(argv)
    if args.users < 1 or args.seconds < 1:
        parser.error("--users and --seconds must be at least 1")
    folder = Path(tempfile.mkdtemp(prefix="load-run-"))
    try:
        return run(args, folder)
    finally:
        if args.results:
            args.results.mkdir(parents=True, exist_ok=True)
            for path in folder.glob("*"):
                if path.is_file() and path.suffix in (".csv", ".log"):
                    shutil.copy2(path, args.results / path.name)
            print(f"CSVs and logs kept in {args.results}")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
