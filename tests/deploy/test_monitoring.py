"""Prometheus and Grafana of docker-compose.yml: configs checked by promtool, queries by the code.

promtool (``make promtool``, from the distribution's prometheus package) validates the scrape
config and parses every dashboard query as PromQL (as recording rules). Each metric and label a
query names must be one the app exports: the names come from prometheus-client's registry once
the app's modules are imported, the labels from the metrics the code declares.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "ml-api.json"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
COMPOSE_FILE = ROOT / "docker-compose.yml"

#: Series Prometheus itself writes for each target (its documentation, "Jobs and instances").
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
#: Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and",
    "or", "unless", "inf", "nan",
}  # fmt: skip
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def _promtool() -> Path:
    found = Path(sys.executable).with_name("promtool")
    if not found.is_file():
        on_path = shutil.which("promtool")
        assert on_path, "promtool missing: `make promtool` (a prerequisite of `make test`)"
        found = Path(on_path)
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_promtool()), *args], capture_output=True, text=True, timeout=60, check=False
    )


def promql_names(expression: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression refers to: selectors, matchers, groupings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for _, names in _GROUPING.findall(text):
        labels |= {name.strip() for name in names.split(",") if name.strip()}
    text = _GROUPING.sub(" ", text)
    metrics = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("(") or word.lower() in _PROMQL_WORDS:
            continue  # a function or aggregation, or a keyword
        metrics.add(word)
    return metrics, labels


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every series the app's /metrics can carry."""
    import prometheus_client

    import functions.api.main  # noqa: F401  (registers everything the app serves)
    from functions.api.observability import METRICS

    declared = {}
    for field in fields(METRICS):
        collector = getattr(METRICS, field.name)
        # prometheus-client exposes a labelled metric's label names only through its children,
        # which exist once a value was recorded; the declaration itself has them.
        declared[collector._name] = set(collector._labelnames)
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    found: dict[str, set[str]] = {}
    for family in prometheus_client.REGISTRY.collect():
        labels = declared.get(family.name, set()) | {
            name for sample in family.samples for name in sample.labels
        }
        for suffix in suffixes.get(family.type, ("",)):
            extra = {"le"} if suffix == "_bucket" else set()
            if family.type == "summary" and suffix == "":
                extra = {"quantile"}
            found[family.name + suffix] = labels | extra
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(dashboard["panels"])
    for panel in list(panels):
        panels.extend(panel.get("panels", ()))  # collapsed rows hold their own panels
    return [
        (panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", ())
    ]


def _as_rules(queries: list[tuple[str, str]]) -> str:
    """The queries as recording rules, Grafana's interval variables given a value."""
    rules = []
    for index, (_, expression) in enumerate(queries):
        concrete = re.sub(r"\$__(rate_interval|interval|range)", "5m", expression)
        rules.append({"record": f"dashboard:query_{index}", "expr": concrete})
    return yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})


def test_promtool_accepts_the_scrape_config() -> None:
    result = _run("check", "config", str(PROMETHEUS_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "prometheus.yml"
    text = PROMETHEUS_CONFIG.read_text()
    broken.write_text(text.replace("scrape_interval: 15s", "scrape_interval: soon"))

    assert _run("check", "config", str(broken)).returncode != 0


def test_every_dashboard_query_is_promql(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    rules = tmp_path / "queries.yml"
    rules.write_text(_as_rules(queries))

    result = _run("check", "rules", str(rules))

    assert result.returncode == 0, result.stdout + result.stderr
    # Proof that the parse bites: an unbalanced query is refused.
    rules.write_text(_as_rules([("broken", "sum(rate(http_requests_total[5m])")]))
    assert _run("check", "rules", str(rules)).returncode != 0


def test_every_dashboard_query_names_exported_metrics_and_labels() -> None:
    series = exported()
    target_labels = TARGET_LABELS | _static_labels()
    checked = set()
    for title, expression in dashboard_queries():
        metrics, labels = promql_names(expression)
        assert metrics, (title, expression)
        for metric in metrics - PROMETHEUS_SYNTHETIC:
            assert metric in series, f"{title!r}: the app exports no {metric} ({expression})"
        known = set().union(*(series.get(m, set()) for m in metrics)) | target_labels
        assert labels <= known, f"{title!r}: unknown labels {labels - known} ({expression})"
        checked |= metrics
    # The panels the issue asks for are there: requests, latency histogram, predictions, refresh.
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "predictions_total",
            "model_refresh_failures_total", "model_load_seconds_count",
            "shadow_predictions_total"} <= checked  # fmt: skip


def test_exported_names_come_from_the_registry() -> None:
    series = exported()
    assert series["http_requests_total"] == {"route", "method", "status"}
    assert series["http_request_duration_seconds_bucket"] == {"route", "method", "le"}
    assert series["predictions_total"] == {"model", "version", "risk_level", "variant"}
    assert "process_cpu_seconds_total" in series  # prometheus-client's default collectors
    assert "predictions" not in series
    assert "http_requests_total_total" not in series


@pytest.mark.parametrize(
    ("expression", "metrics", "labels"),
    [
        ('sum by (route) (rate(http_requests_total{status=~"5.."}[$__rate_interval]))',
         {"http_requests_total"}, {"route", "status"}),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) / on(job) up offset 1m",
         {"x_bucket", "up"}, {"le", "job"}),
        ('count_values("v", y{a="b c"}) > bool 1e3', {"y"}, {"a"}),
    ],
)  # fmt: skip
def test_promql_names(expression: str, metrics: set[str], labels: set[str]) -> None:
    assert promql_names(expression) == (metrics, labels)


def _static_labels() -> set[str]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return {
        label
        for job in config["scrape_configs"]
        for static in job.get("static_configs", ())
        for label in static.get("labels", {})
    }


# ------------------------------------------------------------------- compose wiring ----------


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    from tests.deploy.test_compose import _compose_config

    result = _compose_config(COMPOSE_FILE, API_KEYS="[]")
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)["services"]
    return found


def test_prometheus_scrapes_the_proxy_which_reads_the_key_from_a_secret(
    services: dict[str, Any],
) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    proxy = services[host]
    assert proxy["environment"]["PORT"] == port
    assert proxy["environment"]["UPSTREAM_METRICS_URL"] == "http://api:8000/metrics"
    (secret,) = proxy["secrets"]
    assert proxy["environment"]["API_KEY_FILE"] == secret["target"]
    assert not proxy.get("ports")  # reachable on the compose network only
    assert job["metrics_path"] == "/metrics"
    # The key lives in the secret file, never in the compose file or the Prometheus config.
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    assert raw["secrets"][secret["source"]]["file"].startswith("./.secrets/")
    assert ".secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    mounted = {volume["target"]: volume["source"] for volume in services["prometheus"]["volumes"]}
    assert mounted["/etc/prometheus/prometheus.yml"] == str(PROMETHEUS_CONFIG)
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    mounted = {volume["target"]: volume["source"] for volume in grafana["volumes"]}
    assert mounted["/etc/grafana/provisioning"] == str(MONITORING / "grafana" / "provisioning")
    assert mounted["/var/lib/grafana/dashboards"] == str(DASHBOARD.parent)
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    prometheus_port = services["prometheus"]["ports"][0]["target"]
    assert source["url"] == f"http://prometheus:{prometheus_port}"
    uids = {
        target["datasource"]["uid"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    }
    assert uids == {source["uid"]}
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]  # from its secret file


# ------------------------------------------------------------------- the scrape proxy --------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[str | None]]]:
    """A stand-in for the API's /metrics that records the X-API-Key of each request."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("X-API-Key"))
            ok = self.headers.get("X-API-Key") == "key-two"
            body = b"up_total 1\n" if ok else b'{"error": {"code": "unauthorized"}}'
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_proxy_adds_the_key_from_the_file_and_follows_its_rotation(
    upstream: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    url, seen = upstream
    key_file = tmp_path / "prometheus_api_key"
    key_file.write_text("key-one\n")
    port = _free_port()
    env = {"UPSTREAM_METRICS_URL": url, "API_KEY_FILE": str(key_file), "HOST": "127.0.0.1",
           "PORT": str(port), "PATH": "/usr/bin:/bin"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, str(MONITORING / "scrape_proxy.py")], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            end = time.monotonic() + 20
            while True:
                assert process.poll() is None, process.communicate()[0]
                try:
                    first = client.get("/metrics")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < end, "the proxy did not start"
                    time.sleep(0.05)
            key_file.write_text("key-two")  # rotated: no restart
            second = client.get("/metrics")
            elsewhere = client.get("/health")
    finally:
        process.kill()
        process.communicate(timeout=10)

    assert first.status_code == 401  # the API's answer, passed through
    assert second.status_code == 200
    assert second.text == "up_total 1\n"
    assert second.headers["content-type"].startswith("text/plain")
    assert seen == ["key-one", "key-two"]
    assert elsewhere.status_code == 404
