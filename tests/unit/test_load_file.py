"""``tests/load_test.py`` (locust) and ``bench/load_run.py`` (``make load``), without a 60 s run.

Locust is not in the test environment (it lives in ``.venv/locust``: it brings gevent, which
monkey-patches the process that imports it, and registers a pytest plugin), so the locust file is
loaded here against a strict stand-in for the four names it imports from locust. Every task then
runs against the real app (a small trained model, the same auth) through a client with the shape
of locust's ``FastHttpSession.request(..., catch_response=True)``: each task must mark its answer
a success, and the response checks must fail wrong answers with stable messages. ``make load``
is the real run.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import random
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.api.main import create_app
from functions.api.settings import ApiSettings
from models.churn.features import ChurnFeatures
from models.churn.train import TrainConfig
from tests.trained import trained_store

ROOT = Path(__file__).resolve().parents[2]
LOCUST_FILE = ROOT / "tests" / "load_test.py"
RUNNER = ROOT / "bench" / "load_run.py"
KEY = "load-test-key"
ENDPOINTS = {
    ("POST", "/predict/churn"),
    ("POST", "/predict/churn/batch"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/models"),
    ("GET", "/models/churn/versions"),
    ("GET", "/experiments"),
    ("GET", "/experiments/churn/runs"),
}


# -- a strict stand-in for the part of locust's API the file uses ----------------------------------


class _FastHttpUser:
    """``locust.FastHttpUser``: the file's users get ``client`` from here."""

    client: Any

    def __init__(self, environment: Any = None) -> None:
        self.environment = environment


def _task(weight: Any = 1) -> Any:
    """``locust.task``: ``@task`` or ``@task(weight)``, recorded as ``locust_task_weight``."""

    def mark(function: Callable[..., Any], weight: int) -> Callable[..., Any]:
        function.locust_task_weight = weight
        return function

    if callable(weight):
        return mark(weight, 1)
    return lambda function: mark(function, weight)


class _Hook:
    def __init__(self) -> None:
        self.listeners: list[Callable[..., Any]] = []

    def add_listener(self, function: Callable[..., Any]) -> Callable[..., Any]:
        self.listeners.append(function)
        return function


def _stand_in() -> types.ModuleType:
    module = types.ModuleType("locust")
    module.FastHttpUser = _FastHttpUser
    module.task = _task
    module.constant = lambda seconds: ("constant", seconds)
    module.events = types.SimpleNamespace(test_stop=_Hook())
    module.stats = types.SimpleNamespace(CSV_STATS_INTERVAL_SEC=1)
    return module


def _load(path: Path, name: str, **modules: types.ModuleType) -> types.ModuleType:
    """Import ``path`` as ``name`` with ``modules`` in ``sys.modules`` while it runs."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {key: sys.modules.get(key) for key in [*modules, name]}
    sys.modules.update({**modules, name: module})
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
    return module


@pytest.fixture(scope="module")
def load_test() -> Iterator[types.ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOAD_API_KEY", KEY)
        yield _load(LOCUST_FILE, "load_test_under_test", locust=_stand_in())


@pytest.fixture(scope="module")
def runner() -> types.ModuleType:
    return _load(RUNNER, "load_run_under_test")


# -- a client with the shape of locust's FastHttpSession, on the real app ------------------------


class _Response:
    """``ResponseContextManager``: the task must call success() or failure() itself."""

    def __init__(self, status_code: int, text: str) -> None:
        self.status_code = status_code
        self.text = text
        self.outcome: str | None = None  # "ok" or the failure message

    def success(self) -> None:
        self.outcome = "ok"

    def failure(self, exc: Any) -> None:
        self.outcome = str(exc)


class _Session:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.calls: list[tuple[str, str, str, dict[str, str]]] = []

    @contextmanager
    def request(
        self,
        method: str,
        url: str,
        name: str | None = None,
        data: Any = None,
        catch_response: bool = False,
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> Iterator[_Response]:
        assert catch_response, "every request must be checked (catch_response=True)"
        answer = self.client.request(method, url, json=json, headers=headers or {})
        response = _Response(answer.status_code, answer.text)
        yield response
        assert response.outcome is not None, f"{method} {url} was neither success nor failure"
        self.calls.append((method, url, response.outcome, dict(headers or {})))


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("load-store")
    store = trained_store(folder, TrainConfig(rows=1000, n_estimators=10, early_stopping_rounds=3))
    keys = [
        {
            "name": "load",
            "scopes": ["predict", "read"],
            "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
        }
    ]
    settings = ApiSettings(
        TRACKING_URI=store.tracking_uri,
        ARTIFACT_URI=store.artifact_uri,
        API_KEYS=json.dumps(keys),
        MODEL_CACHE_DIR=str(folder / "cache"),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


# -- the locust file ------------------------------------------------------------------------------


def test_the_file_imports_only_locust_and_the_standard_library() -> None:
    """It runs from locust's own venv, where none of our packages (or pydantic) are installed."""
    tree = ast.parse(LOCUST_FILE.read_text())
    roots = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert roots - {"locust", "__future__"} <= set(sys.stdlib_module_names)
    assert "locust" in roots


def test_one_user_class_with_weighted_tasks_for_every_endpoint(load_test: Any) -> None:
    users = [
        value
        for value in vars(load_test).values()
        if isinstance(value, type)
        and issubclass(value, _FastHttpUser)
        and value is not _FastHttpUser
    ]
    assert [user.__name__ for user in users] == ["ApiUser"]
    user = users[0]
    assert user.wait_time == ("constant", 0)
    weights = {
        name: function.locust_task_weight
        for name, function in vars(user).items()
        if hasattr(function, "locust_task_weight")
    }
    assert weights == load_test.WEIGHTS
    assert len(weights) == len(ENDPOINTS)
    # Predictions are most of the traffic, as in production.
    predict = weights["predict_one"] + weights["predict_batch"]
    assert predict / sum(weights.values()) > 0.5


def test_every_task_succeeds_against_the_app(load_test: Any, app_client: TestClient) -> None:
    session = _Session(app_client)
    user = load_test.ApiUser()
    user.client = session
    user.on_start()
    user.rng = random.Random(7)
    runs = {"predict_one": 150, "predict_batch": 10}
    for name in load_test.WEIGHTS:
        for _ in range(runs.get(name, 3)):
            getattr(user, name)()
    failures = [
        (method, url, outcome) for method, url, outcome, _ in session.calls if outcome != "ok"
    ]
    assert failures == []
    assert {(method, url) for method, url, *_ in session.calls} == ENDPOINTS
    # The key goes with every protected request and never to the open probes.
    for method, url, _, headers in session.calls:
        assert ("X-API-Key" in headers) == (url not in ("/health", "/ready")), (method, url)
        if "X-API-Key" in headers:
            assert headers["X-API-Key"] == KEY


def test_generated_rows_are_valid_and_varied(load_test: Any) -> None:
    rng = random.Random(3)
    rows = [load_test.player_row(rng) for _ in range(5000)]
    for row in rows:
        ChurnFeatures.model_validate(row)  # raises on any out-of-range or unknown field
    minimal = sum(
        1 for row in rows if set(row) == {"player_id", "sessions_7d", "playtime_7d", "iap_count"}
    )
    assert 0.15 < minimal / len(rows) < 0.4  # about a quarter look like the seed request
    for name in load_test.OPTIONAL_FEATURES:
        assert sum(1 for row in rows if name in row) > 2000
    assert len({row["player_id"] for row in rows}) > 4900
    assert 0.05 < sum(1 for row in rows if row["iap_count"]) / len(rows) < 0.5  # most never pay


def _prediction(player_id: str = "p_1", **changes: Any) -> dict[str, Any]:
    body = {
        "player_id": player_id,
        "churn_probability": 0.25,
        "risk_level": "low",
        "model_version": "v1",
    }
    return {**body, **changes}


def _page(*items: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(items), "next_token": None}


def test_the_checks_pass_right_answers(load_test: Any) -> None:
    m = load_test
    assert m.check_prediction(_prediction(), "p_1") is None
    assert (
        m.check_batch(
            {"predictions": [_prediction("a"), _prediction("b")], "model_version": "v1"}, ["a", "b"]
        )
        is None
    )
    health = {"status": "ok", "degraded": False, "uptime_seconds": 1.0, "models": [{}]}
    assert m.check_health(health) is None
    assert m.check_ready({"ready": True}) is None
    assert m.check_models(_page({"name": "churn", "aliases": {"production": 1}})) is None
    assert m.check_versions(_page({"name": "churn", "version": 1})) is None
    assert m.check_experiments(_page({"name": "churn"})) is None
    assert m.check_runs(_page({"run_id": "abc"})) is None


@pytest.mark.parametrize(
    ("check", "body", "args"),
    [
        ("check_prediction", _prediction(churn_probability=1.5), ("p_1",)),
        ("check_prediction", _prediction(churn_probability=-0.1), ("p_1",)),
        ("check_prediction", _prediction(churn_probability="0.2"), ("p_1",)),
        ("check_prediction", _prediction(churn_probability=True), ("p_1",)),
        ("check_prediction", _prediction(risk_level="extreme"), ("p_1",)),
        ("check_prediction", _prediction(model_version="latest"), ("p_1",)),
        ("check_prediction", _prediction(extra=1), ("p_1",)),
        ("check_prediction", _prediction("p_2"), ("p_1",)),
        ("check_prediction", [], ("p_1",)),
        ("check_batch", {"predictions": [_prediction("a")], "model_version": "v1"}, (["a", "b"],)),
        (
            "check_batch",
            {"predictions": [_prediction("b"), _prediction("a")], "model_version": "v1"},
            (["a", "b"],),
        ),
        ("check_batch", {"predictions": [_prediction("a")], "model_version": "v2"}, (["a"],)),
        ("check_batch", {"rows": []}, (["a"],)),
        ("check_health", {"status": "degraded", "degraded": True, "models": [{}]}, ()),
        ("check_health", {"status": "ok", "degraded": False, "models": []}, ()),
        ("check_ready", {"ready": False}, ()),
        ("check_models", _page({"name": "churn", "aliases": {}}), ()),
        ("check_models", _page(), ()),
        ("check_models", {"items": []}, ()),
        ("check_versions", _page(), ()),
        ("check_versions", _page({"name": "other", "version": 1}), ()),
        ("check_experiments", _page({"name": "other"}), ()),
        ("check_runs", _page(), ()),
        ("check_runs", _page({"id": "abc"}), ()),
    ],
)
def test_the_checks_fail_wrong_answers(
    load_test: Any, check: str, body: Any, args: tuple[Any, ...]
) -> None:
    problem = getattr(load_test, check)(body, *args)
    assert isinstance(problem, str)
    assert problem


def test_judge_fails_errors_with_stable_messages(load_test: Any) -> None:
    """Locust groups failures by message: no request ids or values may leak into it."""

    def error(request_id: str) -> str:
        return json.dumps(
            {
                "error": {
                    "code": "unauthorized",
                    "message": "a valid X-API-Key header is required",
                    "request_id": request_id,
                }
            }
        )

    def accept(body: Any) -> None:
        return None

    first, second = (load_test.judge(401, error(rid), accept) for rid in ("r1", "r2"))
    assert first == second
    assert "unauthorized: a valid X-API-Key header is required" in first
    assert "LOAD_API_KEY" in first
    assert "r1" not in first
    assert load_test.judge(500, "Internal Server Error", accept) == "HTTP 500 no error body"
    assert load_test.judge(0, None, accept) == "HTTP 0 no error body"  # connection error
    assert load_test.judge(200, "<html>", accept) == "HTTP 200 whose body is not JSON"
    assert load_test.judge(200, "{}", accept) is None
    assert load_test.judge(200, "{}", lambda body: "wrong") == "wrong"
    # Check messages never carry per-request values either.
    problems = {
        load_test.check_prediction(_prediction(f"p_{i}", churn_probability=1 + i), "p_0")
        for i in range(1, 4)
    }
    assert len(problems) == 1


def test_csv_gets_a_last_write_after_the_users_stop(
    load_test: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locust writes --csv every second and not at exit; the listener waits for one more write."""
    listeners = load_test.events.test_stop.listeners
    assert listeners == [load_test._let_the_csv_catch_up]
    slept: list[float] = []
    monkeypatch.setattr(load_test, "time", types.SimpleNamespace(sleep=slept.append))
    no_csv = types.SimpleNamespace(parsed_options=types.SimpleNamespace(csv_prefix=None))
    listeners[0](environment=no_csv)
    listeners[0](environment=types.SimpleNamespace(parsed_options=None))  # locust as a library
    assert slept == []
    with_csv = types.SimpleNamespace(parsed_options=types.SimpleNamespace(csv_prefix="x"))
    listeners[0](environment=with_csv)
    assert slept == [1.5]


# -- the runner (bench/load_run.py) -------------------------------------------------------------

STATS_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,\
90%,95%,98%,99%,99.9%,99.99%,100%
GET,/health,371,0,3,3.18,0.83,47.65,247.9,76.34,0.0,3,3,4,4,6,7,7,9,48,48,48
POST,/predict/churn,2359,{failures},1,1.64,0.69,46.52,94.76,485.42,0.0,1,2,2,2,3,3,4,4,8,47,47
,Aggregated,2730,{failures},2,2.22,0.69,47.65,821.3,561.76,0.0,2,2,3,3,4,5,7,8,16,48,48
"""


def test_runner_reads_locust_stats_and_fails_on_any_failure(runner: Any, tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(STATS_CSV.format(failures=0))  # the columns of locust 2.47's _stats.csv
    rows = runner.read_stats(path)
    assert [row.label for row in rows] == ["GET /health", "POST /predict/churn", "Aggregated"]
    total = rows[-1]
    assert (total.requests, total.failures, total.rps) == (2730, 0, 561.76)
    assert (total.median, total.p95, total.p99) == (2, 5, 8)
    assert runner.verdict(rows) is None
    table = runner.format_table(rows)
    for text in ("req/s", "p95 ms", "p99 ms", "561.8", "2,730"):
        assert text in table

    path.write_text(STATS_CSV.format(failures=3))
    assert runner.verdict(runner.read_stats(path)) == "3 of 2730 requests failed"
    path.write_text(STATS_CSV.splitlines()[0] + "\n,Aggregated,0,0,0,0,0,0,0,0,0" + ",N/A" * 11)
    assert runner.verdict(runner.read_stats(path)) == "no requests were made"


def test_runner_reads_failures_most_frequent_first(runner: Any, tmp_path: Path) -> None:
    path = tmp_path / "locust_failures.csv"
    path.write_text(
        "Method,Name,Error,Occurrences,First Seen,Last Seen\n"
        "GET,/models,HTTP 500 no error body,2,1,2\n"
        "POST,/predict/churn,HTTP 503 model_unavailable: x,7,1,2\n"
    )
    assert runner.read_failures(path) == [
        ("POST /predict/churn: HTTP 503 model_unavailable: x", 7),
        ("GET /models: HTTP 500 no error body", 2),
    ]
    assert runner.read_failures(tmp_path / "missing.csv") == []


def test_runner_command_and_key(runner: Any, tmp_path: Path) -> None:
    command = runner.locust_command(
        "locust",
        host="http://127.0.0.1:9",
        users=16,
        spawn_rate=16,
        seconds=60,
        prefix=tmp_path / "locust",
    )
    assert command[:3] == ["locust", "-f", str(LOCUST_FILE)]
    text = " ".join(command)
    for flag in (
        "--headless",
        "-u 16",
        "-r 16",
        "-t 60s",
        "--host http://127.0.0.1:9",
        "--only-summary",
        f"--csv {tmp_path / 'locust'}",
        "--exit-code-on-error 1",
    ):
        assert flag in text
    (spec,) = json.loads(runner.api_keys("secret"))
    assert spec == {
        "name": "load",
        "scopes": ["predict", "read"],
        "sha256": hashlib.sha256(b"secret").hexdigest(),
    }
    ApiSettings(API_KEYS=runner.api_keys("secret"))  # the server accepts it


def test_pytest_does_not_collect_the_locust_file(pytestconfig: pytest.Config) -> None:
    """``load_test.py`` matches pytest's default ``*_test.py``: importing it would import locust
    (absent here; gevent's monkey-patching where present). pyproject's ``python_files`` (or a
    ``collect_ignore``) must keep it out of the suite."""
    ignored = pytestconfig.hook.pytest_ignore_collect(
        collection_path=LOCUST_FILE, config=pytestconfig
    )
    patterns = pytestconfig.getini("python_files")
    assert ignored or not any(fnmatch(LOCUST_FILE.name, pattern) for pattern in patterns), (
        f"pytest would collect {LOCUST_FILE.name} (python_files = {patterns})"
    )
