"""A local stand-in for the AWS Lambda Runtime API, for driving the real ``awslambdaric``.

It serves the four routes a runtime client calls (API version 2018-06-01) on 127.0.0.1:

    GET  /2018-06-01/runtime/invocation/next            -> the next queued event (long poll)
    POST /2018-06-01/runtime/invocation/{id}/response   <- the handler's result
    POST /2018-06-01/runtime/invocation/{id}/error      <- an invocation error
    POST /2018-06-01/runtime/init/error                 <- an init (import) error

``invoke(event)`` queues an event and waits for what the client posts back, as the Lambda service
does. Every wait is bounded; ``close()`` ends a pending long poll so the server stops promptly.
It can also run on its own (``python -m tests.deploy.runtime_api EVENT.json...``) to drive a
runtime started elsewhere, e.g. inside a built image (see deploy/image_check.sh).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:ml-api-ApiFunction-test"
DEADLINE_MS = 29_000


@dataclass
class Outcome:
    """What the runtime client posted for one invocation (or for init)."""

    kind: str  # "response", "error" or "init_error"
    body: bytes
    headers: dict[str, str]
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    queue: deque[tuple[str, bytes]] = field(default_factory=deque)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    init_error: Outcome | None = None
    first_poll_at: float | None = None
    polls: int = 0
    closed: bool = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the client keeps its connection alive between calls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self._send(404, b'{"errorType": "NotFound"}')
            return
        state = self.server.state
        with state.lock:
            state.polls += 1
            if state.first_poll_at is None:
                state.first_poll_at = time.monotonic()
                state.lock.notify_all()
            # A long poll, as on Lambda, but woken once a second to notice close().
            while not state.queue and not state.closed:
                state.lock.wait(timeout=1.0)
            if state.closed:
                self._send(500, b'{"errorType": "ShuttingDown"}')
                self.close_connection = True
                return
            request_id, event = state.queue.popleft()
        deadline = int(time.time() * 1000) + DEADLINE_MS
        self._send(
            200,
            event,
            {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline),
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            },
        )

    def do_POST(self) -> None:
        body = self._read_body()
        state = self.server.state
        headers = {name.lower(): value for name, value in self.headers.items()}
        parts = self.path.removeprefix(PREFIX).strip("/").split("/")
        if parts == ["init", "error"]:
            with state.lock:
                state.init_error = Outcome("init_error", body, headers, time.monotonic())
                state.lock.notify_all()
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            with state.lock:
                state.outcomes[parts[1]] = Outcome(parts[2], body, headers, time.monotonic())
                state.lock.notify_all()
        else:
            self._send(404, b'{"errorType": "NotFound"}')
            return
        self._send(202, b'{"status": "OK"}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class RuntimeApiEmulator:
    """The Runtime API on ``127.0.0.1:<free port>``; ``address`` goes in AWS_LAMBDA_RUNTIME_API."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._ids = itertools.count(1)

    @property
    def state(self) -> _State:
        return self._server.state

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self) -> RuntimeApiEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self.state.lock:
            self.state.closed = True
            self.state.lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def enqueue(self, event: dict[str, Any]) -> str:
        """Queue an event for the next ``/invocation/next``; returns its request id."""
        request_id = f"{next(self._ids):08d}-{uuid.uuid4()}"
        with self.state.lock:
            self.state.queue.append((request_id, json.dumps(event).encode()))
            self.state.lock.notify_all()
        return request_id

    def wait(self, request_id: str, timeout: float) -> Outcome:
        """What the client posted for ``request_id``; raises on an init error or a timeout."""
        end = time.monotonic() + timeout
        with self.state.lock:
            while request_id not in self.state.outcomes:
                if self.state.init_error is not None:
                    raise RuntimeError(f"init error: {self.state.init_error.body!r}")
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no result for invocation {request_id} in {timeout} s")
                self.state.lock.wait(timeout=min(left, 0.5))
            return self.state.outcomes[request_id]

    def invoke(self, event: dict[str, Any], timeout: float = 30.0) -> Outcome:
        return self.wait(self.enqueue(event), timeout)


def _main(argv: list[str]) -> int:
    """Serve on a fixed port, invoke each event file in turn and print what came back."""
    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("events", nargs="+", type=Path)
    parser.add_argument("--port-file", type=Path, required=True, help="written once listening")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    with RuntimeApiEmulator() as emulator:
        args.port_file.write_text(emulator.address)
        started = time.monotonic()
        failed = 0
        for path in args.events:
            outcome = emulator.invoke(json.loads(path.read_text()), timeout=args.timeout)
            status = outcome.json().get("statusCode") if outcome.kind == "response" else None
            failed += outcome.kind != "response" or status != 200
            line = {
                "event": path.name,
                "kind": outcome.kind,
                "statusCode": status,
                "seconds": round(outcome.at - started, 3),
                "body": outcome.json().get("body"),
            }
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
