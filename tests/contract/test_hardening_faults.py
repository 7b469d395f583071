"""The fault catalogue: AWS failures injected with botocore ``before-send`` hooks in front of moto.

Each fault is injected where a real one happens, inside botocore's retry loop (see
``tests/contract/faults.py``): throttling that botocore's retries absorb and throttling that
outlasts them, DynamoDB 500s, read timeouts before the request left and after DynamoDB committed
it, cancelled and conflicting transactions, ``UnprocessedItems`` for several rounds, S3
``SlowDown``, ``AccessDenied`` and read timeouts (before the response and in the middle of the
body), clock skew and an unreachable endpoint.

What must hold: every acknowledged write is readable afterwards; a failed write leaves nothing
half-done, or completes exactly once when retried; the API answers dependency failures with 503
and ``Retry-After`` (never 500); predictions keep coming from the cached, verified model.

The store-level cases run on moto in-process and on moto's server; the API cases on moto
in-process (one trained model per worker). Each case adds a row to a table printed at the end.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from fastapi.testclient import TestClient

from functions.api.main import create_app
from functions.api.settings import ApiSettings
from models.churn.train import TrainConfig, run_training
from tests.api.conftest import ADMIN, READER, SEED_REQUEST, key_config
from tests.contract.conftest import Backend
from tests.contract.faults import (
    Call,
    Injector,
    dynamodb_cancelled,
    dynamodb_clients,
    dynamodb_error,
    no_backoff,
    read_timeout,
    s3_error,
)
from tests.models_fixtures import save_model_files
from tracking import Conflict, ExperimentLogger, ModelRegistry, StoreUnavailable
from tracking.entities import Metric, RunStatus

OUTCOMES: list[tuple[str, str, str]] = []
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
EVERY = "*"
SKEW = (
    "Signature expired: 20240101T000000Z is now earlier than 20240101T001500Z "
    "(20240101T003000Z - 15 min.)"
)


def record(fault: str, where: str, outcome: str) -> None:
    OUTCOMES.append((fault, where, outcome))


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    yield
    width = max((len(f) for f, _, _ in OUTCOMES), default=10)
    lines = [f"{fault:<{width}}  {where:<18}  {outcome}" for fault, where, outcome in OUTCOMES]
    print("\n[fault catalogue] fault -> observed outcome\n" + "\n".join(lines))  # noqa: T201


def failing(
    operations: set[str] | str, answer: Callable[[Call], AWSResponse], attempts: int = 99
) -> Callable[[Call], AWSResponse | None]:
    """Answer the first ``attempts`` attempts of every call to ``operations`` with ``answer``."""

    def rule(call: Call) -> AWSResponse | None:
        if (operations == EVERY or call.operation in operations) and call.attempt <= attempts:
            return answer(call)
        return None

    return rule


def raising(error: Callable[[Call], Exception]) -> Callable[[Call], AWSResponse]:
    def answer(call: Call) -> AWSResponse:
        raise error(call)

    return answer


def throttled(code: str = "ProvisionedThroughputExceededException") -> Callable[[Call], Any]:
    return lambda call: dynamodb_error(call, code, "Rate of requests exceeds the throughput")


def internal_error(call: Call) -> AWSResponse:
    return dynamodb_error(call, "InternalServerError", "Internal server error", status=500)


# -- store level: DynamoDB and S3 through the SDK -------------------------------------------------


@dataclass
class Aws:
    backend: Backend
    logger: ExperimentLogger
    registry: ModelRegistry
    injector: Injector
    store: Any
    s3: Any
    files: dict[str, Path]

    def where(self) -> str:
        return f"sdk/{self.backend.name}"

    def clear(self) -> None:
        self.injector.rule = None


@pytest.fixture
def aws(backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Aws]:
    no_backoff(monkeypatch, backend.metadata)
    injector = Injector()
    for client in dynamodb_clients(backend.metadata):
        injector.attach(client)
    artifacts: Any = backend.artifacts
    injector.attach(artifacts.client)
    logger = ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)
    registry = ModelRegistry(
        store=backend.metadata,  # type: ignore[arg-type]
        artifact_store=backend.artifacts,
        actor="tester",
    )
    yield Aws(
        backend, logger, registry, injector, backend.metadata, artifacts,
        save_model_files(tmp_path / "files"),
    )  # fmt: skip
    injector.close()


AWS_BACKENDS = pytest.mark.parametrize("backend", ["moto", "moto_server"], indirect=True)


def _points(count: int, key: str = "loss") -> list[Metric]:
    return [Metric(key=key, value=i / 7, step=i, timestamp=1_000 + i) for i in range(count)]


def _log_everything(aws: Aws, name: str) -> str:
    """A run with params, tags, 60 metric points and a finished status; returns its id."""
    with aws.logger.start_run("faults", run_name=name, tags={"case": name}) as run:
        run.log_params({"depth": 5, "rate": 0.1})
        for point in _points(60):
            run.log_metric(point.key, point.value, step=point.step, timestamp=point.timestamp)
        run.set_tag("stage", "done")
    return run.run_id


def _assert_everything(aws: Aws, run_id: str) -> None:
    stored = aws.logger.get_run(run_id)
    assert stored.status == RunStatus.FINISHED
    assert stored.params == {"depth": "5", "rate": "0.1"}
    assert stored.tags["stage"] == "done"
    history = aws.logger.get_metric_history(run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(p.step, p.value) for p in _points(60)]


@AWS_BACKENDS
@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        ("DynamoDB ProvisionedThroughputExceeded x2", throttled()),
        ("DynamoDB ThrottlingException x2", throttled("ThrottlingException")),
        ("DynamoDB 500 InternalServerError x2", internal_error),
        ("DynamoDB read timeout before send x2", raising(read_timeout)),
    ],
)
def test_dynamodb_transient_faults_are_retried(
    aws: Aws, fault: str, answer: Callable[[Call], AWSResponse]
) -> None:
    aws.injector.rule = failing(EVERY, answer, attempts=2)
    run_id = _log_everything(aws, "transient")
    aws.clear()
    _assert_everything(aws, run_id)
    injected = sum(aws.injector.calls.values())
    assert injected > 0
    record(fault, aws.where(), f"retried by botocore, all writes stored ({injected} attempts)")


@AWS_BACKENDS
@pytest.mark.parametrize(
    ("fault", "answer", "message"),
    [
        ("DynamoDB throttling, every attempt", throttled("ThrottlingException"), "throttled"),
        ("DynamoDB 500, every attempt", internal_error, "InternalServerError"),
        ("DynamoDB read timeout, every attempt", raising(read_timeout), "Read timeout"),
        (
            "DynamoDB clock skew (InvalidSignature)",
            lambda call: dynamodb_error(call, "InvalidSignatureException", SKEW),
            "Signature expired",
        ),
    ],
)
def test_dynamodb_persistent_faults_write_nothing_and_retry_later(
    aws: Aws, fault: str, answer: Callable[[Call], AWSResponse], message: str
) -> None:
    run = aws.logger.start_run("faults", run_name="persistent")
    aws.injector.rule = failing(WRITES, answer)
    with pytest.raises(StoreUnavailable, match=message) as params_error:
        run.log_params({"depth": 5})
    for point in _points(30):
        run.log_metric(point.key, point.value, step=point.step, timestamp=point.timestamp)
    with pytest.raises(StoreUnavailable, match=message):
        run.flush()
    assert "Traceback" not in params_error.value.message
    aws.clear()
    assert aws.logger.get_run(run.run_id).params == {}  # nothing half-done
    run.log_params({"depth": 5})  # the caller's retry
    run.end()
    history = aws.logger.get_metric_history(run.run_id, "loss")
    assert [p.step for p in history] == list(range(30))  # the buffered batch, re-sent once
    record(fault, aws.where(), f"StoreUnavailable ({params_error.value.message[:60]}...); "
           "nothing written; retry stores once")  # fmt: skip


@AWS_BACKENDS
def test_chunk_write_failing_part_way_is_resent_and_stored_once(aws: Aws) -> None:
    table = f"{aws.store.table_prefix}-metrics"
    chunk_writes: list[str] = []

    def rule(call: Call) -> AWSResponse | None:
        if call.operation not in ("PutItem", "UpdateItem") or call.body()["TableName"] != table:
            return None
        if call.invocation not in chunk_writes:
            chunk_writes.append(call.invocation)
        # The batch's second chunk write is throttled on every attempt; the first committed.
        if chunk_writes.index(call.invocation) == 1:
            return throttled("ThrottlingException")(call)
        return None

    run = aws.logger.start_run("faults", run_name="part-way")
    aws.injector.rule = rule
    for point in _points(250):  # steps 0-249: three chunks
        run.log_metric(point.key, point.value, step=point.step, timestamp=point.timestamp)
    with pytest.raises(StoreUnavailable, match="throttled"):
        run.flush()
    stored = [p.step for p in aws.logger.get_metric_history(run.run_id, "loss")]
    assert stored == list(range(100))  # the first chunk only: part of the batch is in
    aws.clear()
    run.end()  # re-sends the whole buffered batch
    history = aws.logger.get_metric_history(run.run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(p.step, p.value) for p in _points(250)]
    record("chunk write throttled part-way", aws.where(),
           "StoreUnavailable; batch kept; re-sent whole, every point stored once")  # fmt: skip


def _after_commit(aws: Aws, operations: set[str]) -> Callable[[Call], AWSResponse | None]:
    """The first attempt reaches moto and commits; its response is lost (read timeout)."""
    done: set[str] = set()

    def rule(call: Call) -> AWSResponse | None:
        if call.operation in operations and call.attempt == 1 and call.invocation not in done:
            done.add(call.invocation)
            aws.injector.forward(call)
            aws.injector.count(call.operation)
            raise ReadTimeoutError(endpoint_url=call.request.url)
        return None

    return rule


@AWS_BACKENDS
def test_read_timeout_after_commit_completes_exactly_once(aws: Aws) -> None:
    aws.injector.rule = _after_commit(aws, WRITES)
    run_id = _log_everything(aws, "after-commit")
    source = aws.logger.log_experiment(
        "faults", params={"x": 1}, artifacts={"model_json": aws.files["json"]}
    ).run_id
    version = aws.registry.register_model("churn", source, "model_json")
    assert version.version == 1
    second = aws.registry.register_model("churn", source, "model_json")
    promoted = aws.registry.promote("churn", second.version, to="production")
    rolled = aws.registry.promote("churn", version.version, to="production")
    aws.clear()
    injected = sum(aws.injector.injected.values())
    assert injected > 0
    _assert_everything(aws, run_id)
    runs = list(aws.store.iter_runs("faults"))
    assert len(runs) == 2  # no orphan run from a re-sent CreateRun
    assert [v.version for v in aws.registry.list_versions("churn").items] == [2, 1]
    assert promoted.version == 2
    assert rolled.version == 1
    history = [(c.action.value, c.to_version) for c in aws.registry.history("churn")]
    assert history == [("register", 1), ("register", 2), ("promote", 2), ("promote", 1)]
    assert aws.registry.get_version_by_alias("churn", "production").version == 1
    record("read timeout after commit (every write)", aws.where(),
           f"botocore re-sent {injected} committed writes; each stored exactly once, "
           "calls succeeded")  # fmt: skip


@AWS_BACKENDS
def test_transaction_cancelled_or_in_conflict_on_promote(aws: Aws) -> None:
    run_id = aws.logger.log_experiment("faults", artifacts={"model_json": aws.files["json"]}).run_id
    for _ in range(2):
        aws.registry.register_model("churn", run_id, "model_json")
    aws.registry.promote("churn", 1, to="production")
    before = aws.registry.history("churn")

    def cancelled(reason: str) -> Callable[[Call], AWSResponse | None]:
        def rule(call: Call) -> AWSResponse | None:
            if call.operation != "TransactWriteItems":
                return None
            reasons = []
            for item in call.body()["TransactItems"]:
                put = item.get("Put", {}).get("Item", {})
                hit = put.get("sk", {}).get("S", "").startswith("ALIAS#")
                reasons.append(reason if hit else "None")
            return dynamodb_cancelled(call, reasons)

        return rule

    outcomes = []
    for reason, expected in (
        ("TransactionConflict", Conflict),
        ("ConditionalCheckFailed", Conflict),
        ("ThrottlingError", StoreUnavailable),
    ):
        aws.injector.rule = cancelled(reason)
        with pytest.raises(expected) as raised:
            aws.registry.promote("churn", 2, to="production")
        aws.clear()
        assert aws.registry.get_version_by_alias("churn", "production").version == 1
        assert aws.registry.history("churn") == before  # nothing half-done
        outcomes.append(f"{reason}->{type(raised.value).__name__}")
    assert aws.registry.promote("churn", 2, to="production").version == 2
    record("TransactionCanceled on promote", aws.where(),
           ", ".join(outcomes) + "; alias and history unchanged; retry promotes")  # fmt: skip


# -- S3 ------------------------------------------------------------------------------------------


@AWS_BACKENDS
def test_s3_faults(aws: Aws, tmp_path: Path) -> None:
    run = aws.logger.start_run("faults", run_name="s3")
    slow = s3_error  # keep the names short below

    aws.injector.rule = failing({"PutObject"}, lambda c: slow(c, "SlowDown", "Reduce rate", 503), 2)
    artifact = run.log_artifact(aws.files["json"], name="model")
    aws.clear()
    assert aws.s3.exists(artifact.uri)
    record("S3 SlowDown x2 on upload", aws.where(), "retried by botocore, uploaded and recorded")

    aws.injector.rule = failing({"PutObject"}, lambda c: slow(c, "SlowDown", "Reduce rate", 503))
    with pytest.raises(StoreUnavailable, match="SlowDown"):
        run.log_artifact(aws.files["ubj"], name="other")
    aws.clear()
    assert "other" not in aws.logger.get_run(run.run_id).artifacts
    record("S3 SlowDown, every attempt", aws.where(), "StoreUnavailable; no record, no object")

    target = tmp_path / "download" / "model.json"
    target.parent.mkdir()
    cases: list[tuple[str, Callable[[Call], AWSResponse | None], str]] = [
        ("S3 AccessDenied on download",
         failing({"GetObject"}, lambda c: slow(c, "AccessDenied", "Access Denied", 403)),
         "AccessDenied"),
        ("S3 read timeout on download", failing({"GetObject"}, raising(read_timeout)),
         "Read timeout"),
        ("S3 read timeout mid-body", _mid_body_timeout(aws), "Read timeout"),
        ("S3 clock skew (RequestTimeTooSkewed)",
         failing({"GetObject"}, lambda c: slow(c, "RequestTimeTooSkewed", SKEW, 403)),
         "RequestTimeTooSkewed"),
    ]  # fmt: skip
    for fault, rule, message in cases:
        aws.injector.rule = rule
        with pytest.raises(StoreUnavailable, match=message) as raised:
            aws.s3.download(artifact.uri, target, artifact.sha256)
        aws.clear()
        assert not target.exists()  # no unverified bytes left behind
        assert list(target.parent.iterdir()) == []
        record(fault, aws.where(), f"StoreUnavailable ({raised.value.message[:50]}...), no file")
    aws.injector.rule = failing({"GetObject"}, raising(read_timeout), attempts=1)
    aws.s3.download(artifact.uri, target, artifact.sha256)
    aws.clear()
    assert target.read_bytes() == aws.files["json"].read_bytes()
    record("S3 read timeout x1 on download", aws.where(), "retried by botocore, verified bytes")
    run.end()


def _mid_body_timeout(aws: Aws) -> Callable[[Call], AWSResponse | None]:
    """GetObject answers 200 with headers, then the body stream times out."""

    class Broken:
        def __init__(self, url: str) -> None:
            self.url = url

        def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
            raise ReadTimeoutError(endpoint_url=self.url)

        def read(self, *args: Any, **kwargs: Any) -> bytes:
            raise ReadTimeoutError(endpoint_url=self.url)

        def close(self) -> None:
            pass

    def rule(call: Call) -> AWSResponse | None:
        if call.operation != "GetObject":
            return None
        real = aws.injector.forward(call)
        headers = {k: v for k, v in real.headers.items() if k.lower() != "content-length"}
        headers["content-length"] = "1000"
        return AWSResponse(call.request.url, 200, headers, Broken(call.request.url))  # type: ignore[arg-type]

    return rule


# -- endpoint unreachable ------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_endpoint_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    logger = ExperimentLogger("dynamodb://closed", "s3://closed-bucket/artifacts")
    counter = Injector()
    clients = [*dynamodb_clients(logger.metadata), logger.artifacts.client]  # type: ignore[attr-defined]
    for client in clients:
        counter.attach(client)
        assert client.meta.config.connect_timeout == 2
        assert client.meta.config.read_timeout == 5
    no_backoff(monkeypatch, logger.metadata)
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1") as dynamo:
        logger.start_run("faults")
    with pytest.raises(StoreUnavailable, match="unreachable") as s3:
        logger.artifacts.exists("s3://closed-bucket/artifacts/runs/r1/model/model.json")
    attempts = dict(counter.calls)
    # Bounded: the first attempt and at most 3 retries (fewer once botocore's retry quota, which
    # other tests in the process may have drawn on, runs low), then give up.
    assert set(attempts) == {"GetItem", "HeadObject"}
    assert all(1 <= count <= 4 for count in attempts.values()), attempts
    dynamo_note = f"after {attempts['GetItem']} attempts: {dynamo.value.message[:50]}..."
    s3_note = f"after {attempts['HeadObject']} attempts: {s3.value.message[:40]}..."
    record("endpoint unreachable (DynamoDB)", "sdk", f"StoreUnavailable {dynamo_note}")
    record("endpoint unreachable (S3)", "sdk", f"StoreUnavailable {s3_note}")

    settings = ApiSettings(
        TRACKING_URI="dynamodb://closed",
        ARTIFACT_URI="s3://closed-bucket/artifacts",
        API_KEYS=key_config(),
        MODEL_CACHE_DIR=str(tmp_path / "cache"),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        statuses = _sweep(client, run_id="0" * 32)
        predict = client.post("/predict/churn", json=SEED_REQUEST, headers=ADMIN)
        assert predict.status_code == 503
        assert "Retry-After" in predict.headers
        health = client.get("/health").json()
        assert health["degraded"] is True
        assert client.get("/ready").status_code == 503
    record("endpoint unreachable", "api", f"{statuses}; predict 503 + Retry-After (no model yet)")


# -- the API on moto: dependency failures are 503, predictions continue ---------------------------


@dataclass
class Served:
    client: TestClient
    injector: Injector
    trainer: ModelRegistry
    run_id: str
    cache: Any

    def refresh(self) -> None:
        self.cache.states["churn"].checked_at = float("-inf")

    def predict_version(self) -> str:
        answer = self.client.post("/predict/churn", json=SEED_REQUEST, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["model_version"])

    def health(self) -> dict[str, Any]:
        answer = self.client.get("/health")
        assert answer.status_code == 200
        model: dict[str, Any] = answer.json()["models"][0]
        return model


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from moto import mock_aws

    folder = tmp_path_factory.mktemp("served")
    tracking_uri, artifact_uri = "dynamodb://served", "s3://served-bucket/artifacts"
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        logger = ExperimentLogger(tracking_uri, artifact_uri)
        logger.metadata.initialize()
        logger.artifacts.initialize()
        trainer = ModelRegistry(
            store=logger.metadata,  # type: ignore[arg-type]
            artifact_store=logger.artifacts,
            actor="trainer",
        )
        small = TrainConfig(rows=1000, n_estimators=10, early_stopping_rounds=5)
        first = run_training(small, promote="production", logger=logger, registry=trainer,
                             show_progress=False, data_dir=folder / "data")  # fmt: skip
        run_training(TrainConfig(**{**small.__dict__, "seed": 7}), logger=logger,
                     registry=trainer, show_progress=False, data_dir=folder / "data2")  # fmt: skip
        settings = ApiSettings(
            TRACKING_URI=tracking_uri,
            ARTIFACT_URI=artifact_uri,
            API_KEYS=key_config(),
            MODEL_CACHE_DIR=str(folder / "cache"),
        )
        app = create_app(settings)
        injector = Injector()
        api_registry: Any = app.state.registry
        no_backoff(patch, api_registry.store)
        for client in dynamodb_clients(api_registry.store):
            injector.attach(client)
        injector.attach(api_registry.artifacts.client)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Served(client, injector, trainer, first.run_id, app.state.model_cache)
        injector.close()


def _sweep(client: TestClient, run_id: str) -> str:
    """Every read and one write: no 500, and each 503 carries Retry-After. Returns a summary."""
    calls = [
        ("GET", "/models", READER, None),
        ("GET", "/models/churn", READER, None),
        ("GET", "/models/churn/versions", READER, None),
        ("GET", "/models/churn/history", READER, None),
        ("GET", "/experiments", READER, None),
        ("GET", "/experiments/churn/runs", READER, None),
        ("GET", f"/runs/{run_id}", READER, None),
        ("POST", "/models/churn/versions/2/promote", ADMIN, {"to": "production"}),
    ]
    seen: dict[int, int] = {}
    for method, path, headers, body in calls:
        answer = client.request(method, path, headers=headers, json=body)
        assert answer.status_code != 500, (path, answer.text)
        assert answer.status_code in (503, 504), (path, answer.status_code, answer.text)
        assert "Retry-After" in answer.headers, path
        assert "Traceback" not in answer.text
        seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
    return ", ".join(f"{count} x {status}" for status, count in sorted(seen.items()))


@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        ("DynamoDB throttling, every attempt", throttled("ThrottlingException")),
        ("DynamoDB 500, every attempt", internal_error),
        ("DynamoDB read timeout, every attempt", raising(read_timeout)),
        ("DynamoDB clock skew", lambda c: dynamodb_error(c, "InvalidSignatureException", SKEW)),
    ],
)
def test_api_dynamodb_down(served: Served, fault: str, answer: Callable[[Call], Any]) -> None:
    assert served.predict_version() == "v1"
    served.injector.rule = failing(EVERY, answer)
    try:
        served.refresh()
        assert served.predict_version() == "v1"  # the cached, verified model
        summary = _sweep(served.client, served.run_id)
        health = served.health()
        assert health["degraded"] is True
        assert health["last_refresh_ok"] is False
    finally:
        served.injector.rule = None
    assert served.trainer.get_version_by_alias("churn", "production").version == 1
    served.refresh()
    assert served.predict_version() == "v1"
    assert served.health()["degraded"] is False
    record(fault, "api", f"{summary}; predictions 200 from cached v1; /health degraded")


@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        ("S3 AccessDenied", lambda c: s3_error(c, "AccessDenied", "Access Denied", 403)),
        ("S3 SlowDown, every attempt", lambda c: s3_error(c, "SlowDown", "Reduce rate", 503)),
        ("S3 read timeout on model download", raising(read_timeout)),
    ],
)
def test_api_s3_down_keeps_cached_model(
    served: Served, fault: str, answer: Callable[[Call], Any]
) -> None:
    served.trainer.promote("churn", 2, to="production")
    try:
        served.injector.rule = failing({"GetObject"}, answer)
        served.refresh()
        assert served.predict_version() == "v1"  # v2 could not be downloaded: keep v1
        health = served.health()
        assert health["degraded"] is True
        assert health["last_error"] == "store_unavailable"
        batch = served.client.post(
            "/predict/churn/batch", json={"rows": [SEED_REQUEST] * 3}, headers=ADMIN
        )
        assert batch.status_code in (200, 422), batch.text
        served.injector.rule = None
        served.refresh()
        assert served.predict_version() == "v2"
        assert served.health()["degraded"] is False
    finally:
        served.injector.rule = None
        served.trainer.rollback("churn")
        served.refresh()
    assert served.predict_version() == "v1"
    record(fault, "api", "refresh failed, predictions 200 from cached v1, /health degraded; "
           "after recovery v2 is served")  # fmt: skip


def test_api_promote_transaction_conflict_is_409(served: Served) -> None:
    def conflict(call: Call) -> AWSResponse | None:
        if call.operation != "TransactWriteItems":
            return None
        count = len(call.body()["TransactItems"])
        return dynamodb_cancelled(call, ["None"] * (count - 1) + ["TransactionConflict"])

    before = served.trainer.history("churn")
    served.injector.rule = conflict
    try:
        answer = served.client.post(
            "/models/churn/versions/2/promote", json={"to": "production"}, headers=ADMIN
        )
    finally:
        served.injector.rule = None
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "conflict"
    assert served.trainer.history("churn") == before
    assert served.trainer.get_version_by_alias("churn", "production").version == 1
    record("TransactionConflict on promote", "api", "409 conflict; alias and history unchanged")
