"""The image's command, ``python -m functions.api.serve``, run as the image runs it.

Lambda mode: the real ``awslambdaric`` against a local Runtime API emulator (``runtime_api.py``),
fed the canned API Gateway events from ``events/``. Server mode: uvicorn on a free local port.
Both processes read a temporary embedded store with a small promoted churn model. Every wait is
bounded and every process is killed in ``finally``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.trained import TrainedStore, trained_store

from .runtime_api import RuntimeApiEmulator

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
API_KEY = "local-dev-key"  # the placeholder key in the canned events
SEED = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}
START_TIMEOUT = 60.0  # seconds for the process to load the model and answer
COMMAND = [sys.executable, "-m", "functions.api.serve"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TrainedStore:
    """An embedded store with a small churn model and the retriever in production (v1 each)."""
    return trained_store(tmp_path_factory.mktemp("serve-store"), rag=True)


def _environment(store: TrainedStore, cache: Path, **extra: str) -> dict[str, str]:
    """The process's environment: ours, less anything Lambda- or store-related, plus ``extra``."""
    keys = [{"name": "ci", "scopes": ["predict", "read"],
             "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]  # fmt: skip
    dropped = ("AWS_", "_LAMBDA", "LAMBDA_", "POWERTOOLS_", "TRACKING_", "ARTIFACT_URI", "API_KEYS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        TRACKING_URI=store.tracking_uri,
        ARTIFACT_URI=store.artifact_uri,
        API_KEYS=json.dumps(keys),
        MODEL_CACHE_DIR=str(cache),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _stop(process: subprocess.Popen[bytes]) -> str:
    """Kill the process (it never exits on its own) and return what it wrote."""
    if process.poll() is None:
        process.kill()
    output, _ = process.communicate(timeout=10)
    return output.decode(errors="replace")


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def _decode(payload: dict[str, Any]) -> Any:
    text = payload.get("body") or ""
    if payload.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    return json.loads(text)


def _report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Show a measured figure even under output capture (run with ``-p no:xdist`` to see it)."""
    with capsys.disabled():
        sys.stdout.write(f"\n{line}\n")


@dataclass
class LambdaRun:
    emulator: RuntimeApiEmulator
    process: subprocess.Popen[bytes]
    cold_start_s: float  # process start -> first prediction posted back
    init_s: float  # process start -> first /invocation/next (init phase done)
    first: dict[str, Any]  # the payload posted back for the first (predict) event


@pytest.fixture(scope="module")
def lambda_run(
    store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaRun]:
    """``python -m functions.api.serve`` with AWS_LAMBDA_RUNTIME_API set, first event queued."""
    cache = tmp_path_factory.mktemp("lambda-cache")
    with RuntimeApiEmulator() as emulator:
        env = _environment(
            store,
            cache,
            AWS_LAMBDA_RUNTIME_API=emulator.address,
            AWS_LAMBDA_FUNCTION_NAME="ml-api-ApiFunction-test",
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
            AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/ml-api-ApiFunction-test",
            AWS_LAMBDA_LOG_STREAM_NAME="2024/06/20/[$LATEST]0123456789abcdef",
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EXECUTION_ENV="AWS_Lambda_python3.12",
            POWERTOOLS_SERVICE_NAME="ml-api",
            POWERTOOLS_METRICS_NAMESPACE="MLOps",
        )
        # Queued before the process starts, as on a cold invocation.
        first_id = emulator.enqueue(_event("rest_v1_predict_churn"))
        started = time.monotonic()
        process = subprocess.Popen(
            COMMAND, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            try:
                outcome = emulator.wait(first_id, START_TIMEOUT)
            except (RuntimeError, TimeoutError) as exc:
                pytest.fail(f"{exc}\n--- process output ---\n{_stop(process)}")
            first_poll = emulator.state.first_poll_at
            assert first_poll is not None
            assert outcome.kind == "response", outcome.body
            yield LambdaRun(
                emulator, process, outcome.at - started, first_poll - started, outcome.json()
            )
        finally:
            _stop(process)


def test_lambda_cold_start_answers_the_first_prediction(
    lambda_run: LambdaRun, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = lambda_run.first

    assert payload["statusCode"] == 200, payload
    body = _decode(payload)
    assert body["player_id"] == "p_123"
    assert 0.0 <= body["churn_probability"] <= 1.0
    assert body["risk_level"] in {"low", "medium", "high"}
    assert body["model_version"] == "v1"
    _report(
        capsys,
        f"[cold start, Lambda runtime path] process start -> init done "
        f"{lambda_run.init_s * 1000:.0f} ms -> first prediction posted "
        f"{lambda_run.cold_start_s * 1000:.0f} ms",
    )


@pytest.mark.parametrize(
    "name", ["rest_v1_predict_churn", "http_v2_predict_churn", "http_v2_predict_churn_base64"]
)
def test_lambda_predict_events(lambda_run: LambdaRun, name: str) -> None:
    outcome = lambda_run.emulator.invoke(_event(name), timeout=30)

    assert outcome.kind == "response", outcome.body
    payload = outcome.json()
    assert payload["statusCode"] == 200, payload
    body = _decode(payload)
    assert body["player_id"] == SEED["player_id"]
    assert 0.0 <= body["churn_probability"] <= 1.0
    assert body["model_version"] == "v1"


@pytest.mark.parametrize("name", ["rest_v1_health", "http_v2_health"])
def test_lambda_health_events(lambda_run: LambdaRun, name: str) -> None:
    outcome = lambda_run.emulator.invoke(_event(name), timeout=30)

    assert outcome.kind == "response", outcome.body
    payload = outcome.json()
    assert payload["statusCode"] == 200, payload
    body = _decode(payload)
    assert body["status"] == "ok", body


def test_lambda_unauthenticated_event_is_a_401_not_an_invocation_error(
    lambda_run: LambdaRun,
) -> None:
    event = _event("http_v2_predict_churn")
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "x-api-key"}

    outcome = lambda_run.emulator.invoke(event, timeout=30)

    assert outcome.kind == "response", outcome.body
    assert outcome.json()["statusCode"] == 401


def test_lambda_init_failure_is_reported_to_init_error(tmp_path: Path, store: TrainedStore) -> None:
    """A broken configuration fails the init phase, and the client says so to the Runtime API."""
    with RuntimeApiEmulator() as emulator:
        env = _environment(
            store,
            tmp_path / "cache",
            AWS_LAMBDA_RUNTIME_API=emulator.address,
            AWS_LAMBDA_FUNCTION_NAME="ml-api-ApiFunction-test",
            API_KEYS="not json",
        )
        process = subprocess.Popen(
            COMMAND, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            end = time.monotonic() + START_TIMEOUT
            while emulator.state.init_error is None and time.monotonic() < end:
                if process.poll() is not None and emulator.state.init_error is None:
                    break
                time.sleep(0.05)
            init_error = emulator.state.init_error
            assert init_error is not None, _stop(process)
            assert "API_KEYS" in init_error.body.decode(), init_error.body
            assert process.wait(timeout=10) != 0
        finally:
            _stop(process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_server_mode_answers_over_http(
    store: TrainedStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    env = _environment(store, tmp_path / "cache", HOST="127.0.0.1", PORT=str(port),
                       SERVED_MODELS="churn,rag")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    process = subprocess.Popen(
        COMMAND, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        with httpx.Client(base_url=base, timeout=5.0) as client:
            end = time.monotonic() + START_TIMEOUT
            health = None
            while time.monotonic() < end and process.poll() is None:
                try:
                    health = client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            assert health is not None, _stop(process)
            ready_s = time.monotonic() - started
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok"

            response = client.post("/predict/churn", json=SEED, headers={"X-API-Key": API_KEY})
            rag = client.post("/predict/rag", json={"query": "rollback", "k": 2},
                              headers={"X-API-Key": API_KEY})  # fmt: skip
            unknown = client.post("/predict/nope", json=SEED, headers={"X-API-Key": API_KEY})
            ready = client.get("/ready")

        assert rag.status_code == 200, rag.text
        assert len(rag.json()["passages"]) == 2
        assert unknown.status_code == 404
        assert ready.json() == {"ready": True, "unavailable": []}

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["player_id"] == "p_123"
        assert 0.0 <= body["churn_probability"] <= 1.0
        assert body["model_version"] == "v1"
        _report(
            capsys,
            f"[start, server mode] process start -> /health answered {ready_s * 1000:.0f} ms",
        )
    finally:
        _stop(process)
