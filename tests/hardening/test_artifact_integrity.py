"""Artifact integrity: tampered, missing or pickled model artifacts are never served.

Three parts:

1. **Tampering.** On both artifact backends (a local folder, and a versioned S3 bucket on moto),
   a verified churn model ``v1`` serves; ``v2`` (another valid model) is registered and then its
   stored bytes are tampered with: one bit flipped, truncated (tail, to zero bytes), swapped for a
   third valid model (locally also through symlinks), deleted, and on S3 replaced by another
   object version (another model, forged ``sha256`` metadata, a copied version of another
   artifact) or purged of every version. The S3 artifact store records no ``VersionId`` (the
   registry pins bytes by SHA-256, not versions), so no case loads a pinned older version. Each
   case is checked
   through every loading path: the SDK (``ModelRegistry.load_model``, ``download``,
   ``models.base.load_predictor``, a new registration of the same artifact), an API started on
   the tampered production version, an API that serves ``v1`` and refreshes onto the tampered
   ``v2``, and a request pinned to ``v2``. XGBoost's loader is wrapped for the whole test and
   records the SHA-256 of every byte string it is handed, and every served probability is
   compared with the verified model's own: unverified bytes are never parsed, never served.
   A control case (the same bytes written again as a new S3 version) must be accepted, so the
   assertions can tell a refusal from a broken setup.
2. **Pickle canary.** A pickle whose ``__reduce__`` writes a canary file is uploaded as a model
   through every route (xgboost flavor, pickle flavors with and without ``allow_pickle``, served
   by an API without ``ALLOW_PICKLE_MODELS``, swapped in for a registered model's bytes). A
   positive control first proves the payload really writes the canary when unpickled.
3. **AST audit.** No ``pickle``/``joblib``/``cloudpickle``/``dill`` (or numpy/pandas/torch
   pickle) load in product code is reachable without the explicit opt-in; see
   ``tests/hardening/pickle_audit.py``. The list of guarded sites is pinned, and a self-test
   proves the checker flags unguarded code.

Counts per kind are printed at the end of the module (``pytest -s``). Regression tests cover
the two defects the suite found (see ``test_missing_artifact_at_start_is_reported_as_such`` and
``test_opted_in_pickle_without_joblib_is_refused_not_a_crash``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import pickle
import sys
import textwrap
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import xgboost
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

import tracking.flavors
from functions.api.main import create_app
from functions.api.settings import ApiSettings
from models.base import load_predictor
from models.churn.features import ChurnFeatures
from models.churn.predictor import ChurnPredictor
from tests.api.conftest import ADMIN, SCORER, key_config, new_store
from tests.hardening.pickle_audit import Site, find_sites
from tracking import ExperimentLogger, IntegrityError, InvalidInput, ModelRegistry, NotFound
from tracking.entities import Flavor, ModelVersion
from tracking.flavors import check_xgboost_artifact, load_model, load_xgboost

ROOT = Path(__file__).resolve().parents[2]
MODEL = "churn"
PROBES = [
    {"player_id": "p1", "sessions_7d": 0, "playtime_7d": 0.0, "iap_count": 0},
    {"player_id": "p2", "sessions_7d": 1, "playtime_7d": 12.5, "iap_count": 0},
    {"player_id": "p3", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1},
    {"player_id": "p4", "sessions_7d": 12, "playtime_7d": 400.0, "iap_count": 3,
     "days_since_install": 200, "sessions_prev_7d": 20, "level": 40},
    {"player_id": "p5", "sessions_7d": 30, "playtime_7d": 1500.0, "iap_count": 9,
     "days_since_last_login": 0, "friends_count": 25, "iap_spend_30d": 49.99},
    {"player_id": "p6", "sessions_7d": 2, "playtime_7d": 30.0, "iap_count": 0,
     "days_since_last_login": 6, "sessions_prev_7d": 14, "avg_session_minutes": 15.0},
]  # fmt: skip

#: kind -> Counter of outcomes, printed when the module ends.
RESULTS: defaultdict[str, Counter[str]] = defaultdict(Counter)


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    print("\n-- artifact integrity --")
    for kind, counts in sorted(RESULTS.items()):
        detail = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
        total = sum(count for name, count in counts.items() if name.endswith("cases"))
        cases = f"{total} cases " if total else ""
        print(f"artifact-integrity {kind}: {cases}({detail})")


# -- models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """A trained churn model's artifact bytes and the registry metadata serving needs."""

    data: bytes
    metadata: dict[str, Any]
    filename: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @functools.cached_property
    def expected(self) -> list[float]:
        """The probabilities this model gives ``PROBES``, computed here from its own bytes."""
        booster = xgboost.Booster()
        booster.load_model(bytearray(self.data))
        version = ModelVersion.model_construct(name=MODEL, version=1, metadata=self.metadata)
        rows = [ChurnFeatures(**row) for row in PROBES]
        predictor = ChurnPredictor.from_version(version, booster)
        return [record["churn_probability"] for record in predictor.predict_records(rows)]


@dataclass(frozen=True)
class Blobs:
    served: Blob  # v1: verified and serving
    candidate: Blob  # v2: registered verified, then tampered with
    intruder: Blob  # a third valid model, swapped in for v2's bytes


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Blobs:
    """Three small churn models trained once (different seeds, so different predictions)."""
    store = new_store(tmp_path_factory.mktemp("models"))
    trained = []
    for seed in (11, 13, 17):
        store.train(seed=seed)
        version = store.registry.get_version(MODEL, len(trained) + 1)
        path = Path(version.artifact_uri.removeprefix("file://"))
        trained.append(Blob(path.read_bytes(), dict(version.metadata), path.name))
    store.logger.close()
    result = Blobs(*trained)
    served, candidate, intruder = (blob.expected for blob in trained)
    # The comparisons below can only tell the models apart if their predictions differ.
    assert served != candidate
    assert served != intruder
    assert candidate != intruder
    return result


# -- worlds: a metadata store, an artifact backend, a registry -----------------------------


@dataclass
class World:
    backend: str
    folder: Path
    tracking_uri: str
    artifact_uri: str
    logger: ExperimentLogger
    registry: ModelRegistry
    #: SHA-256 of every byte string handed to XGBoost's loader during the test.
    parsed: list[str] = field(default_factory=list)

    @property
    def cache(self) -> Path:
        return self.folder / "cache"

    def settings(self, **overrides: Any) -> ApiSettings:
        values: dict[str, Any] = {
            "TRACKING_URI": self.tracking_uri,
            "ARTIFACT_URI": self.artifact_uri,
            "API_KEYS": key_config(),
            "MODEL_CACHE_DIR": str(self.cache),
            # Every request re-reads the alias: refreshes happen on demand, not on a clock.
            "MODEL_REFRESH_SECONDS": 0,
        }
        values.update(overrides)
        return ApiSettings(**values)

    def client(self, **overrides: Any) -> TestClient:
        return TestClient(create_app(self.settings(**overrides)), raise_server_exceptions=False)

    def publish(self, blob: Blob, *, name: str | None = None) -> ModelVersion:
        """Log ``blob`` as a run's ``model`` artifact and register it (verified on the way)."""
        source = self.folder / "src" / uuid.uuid4().hex / (name or blob.filename)
        source.parent.mkdir(parents=True)
        source.write_bytes(blob.data)
        run = self.logger.log_experiment(name="churn", artifacts={"model": source})
        return self.registry.register_model(
            MODEL, run_id=run.run_id, artifact="model", flavor="xgboost", metadata=blob.metadata
        )

    # -- raw access to the stored bytes, behind the SDK's back ----------------------------

    def _s3(self) -> Any:
        import boto3

        return boto3.client("s3")

    def _location(self, uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        return parsed.netloc, parsed.path.lstrip("/")

    def read(self, uri: str) -> bytes:
        if self.backend == "local":
            return Path(uri.removeprefix("file://")).read_bytes()
        bucket, key = self._location(uri)
        return bytes(self._s3().get_object(Bucket=bucket, Key=key)["Body"].read())

    def write(self, uri: str, data: bytes, **extra: Any) -> None:
        if self.backend == "local":
            Path(uri.removeprefix("file://")).write_bytes(data)
            return
        bucket, key = self._location(uri)
        self._s3().put_object(Bucket=bucket, Key=key, Body=data, **extra)

    def delete(self, uri: str) -> None:
        if self.backend == "local":
            Path(uri.removeprefix("file://")).unlink()
            return
        bucket, key = self._location(uri)
        self._s3().delete_object(Bucket=bucket, Key=key)

    def versions(self, uri: str) -> list[dict[str, Any]]:
        """The S3 object's versions (delete markers excluded), newest first."""
        bucket, key = self._location(uri)
        answer = self._s3().list_object_versions(Bucket=bucket, Prefix=key)
        return [v for v in answer.get("Versions", []) if v["Key"] == key]


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    tracking_uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    if backend == "local":
        yield from _world(backend, tmp_path, tracking_uri, f"file://{tmp_path / 'artifacts'}",
                          monkeypatch)  # fmt: skip
        return
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield from _world(backend, tmp_path, tracking_uri, "s3://integrity-artifacts/models",
                          monkeypatch)  # fmt: skip


def _world(
    backend: str,
    folder: Path,
    tracking_uri: str,
    artifact_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    logger = ExperimentLogger(tracking_uri, artifact_uri)
    logger.artifacts.initialize()  # on S3: the bucket, with versioning on (as `tracking init`)
    registry = ModelRegistry(store=logger.metadata, artifact_store=logger.artifacts, actor="sdk")  # type: ignore[arg-type]
    world = World(backend, folder, tracking_uri, artifact_uri, logger, registry)
    real = tracking.flavors.load_xgboost

    def recording(raw: bytes) -> Any:
        world.parsed.append(hashlib.sha256(raw).hexdigest())
        return real(raw)

    # Every XGBoost parse in the process (registration checks, SDK loads, the API's cache) goes
    # through this one function; the record proves which bytes were ever parsed.
    monkeypatch.setattr(tracking.flavors, "load_xgboost", recording)
    try:
        yield world
    finally:
        logger.close()


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def _batch(client: TestClient, **params: Any) -> Any:
    return client.post(
        "/predict/churn/batch", json={"rows": PROBES}, headers=SCORER, params=params or None
    )


# -- 1. tampering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tamper:
    kind: str
    variant: str
    backends: tuple[str, ...]
    #: What loading must raise; None for the control case, which must load.
    error: type[Exception] | None
    apply: Callable[[World, ModelVersion, Blobs], None]

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.variant}"


def _flip_middle_bit(world: World, version: ModelVersion, blobs: Blobs) -> None:
    data = bytearray(world.read(version.artifact_uri))
    data[len(data) // 2] ^= 0x10
    world.write(version.artifact_uri, bytes(data))


def _drop_tail(world: World, version: ModelVersion, blobs: Blobs) -> None:
    data = world.read(version.artifact_uri)
    world.write(version.artifact_uri, data[:-64])


def _empty(world: World, version: ModelVersion, blobs: Blobs) -> None:
    world.write(version.artifact_uri, b"")


def _swap(world: World, version: ModelVersion, blobs: Blobs) -> None:
    world.write(version.artifact_uri, blobs.intruder.data)


def _symlink_to_other_artifact(world: World, version: ModelVersion, blobs: Blobs) -> None:
    """Replace the file with a link to v1's artifact (inside the store's root)."""
    path = Path(version.artifact_uri.removeprefix("file://"))
    path.unlink()
    path.symlink_to(Path(world.registry.get_version(MODEL, 1).artifact_uri.removeprefix("file://")))


def _symlink_outside_root(world: World, version: ModelVersion, blobs: Blobs) -> None:
    """Replace the file with a link out of the store, even to the very registered bytes."""
    outside = world.folder / "outside" / "model.ubj"
    outside.parent.mkdir()
    outside.write_bytes(blobs.candidate.data)
    path = Path(version.artifact_uri.removeprefix("file://"))
    path.unlink()
    path.symlink_to(outside)


def _delete(world: World, version: ModelVersion, blobs: Blobs) -> None:
    world.delete(version.artifact_uri)


def _purge_versions(world: World, version: ModelVersion, blobs: Blobs) -> None:
    """Delete every S3 version of the object (not just a delete marker)."""
    bucket, key = world._location(version.artifact_uri)
    for item in world.versions(version.artifact_uri):
        world._s3().delete_object(Bucket=bucket, Key=key, VersionId=item["VersionId"])
    assert world.versions(version.artifact_uri) == []


def _new_version(world: World, version: ModelVersion, data: bytes, **extra: Any) -> None:
    """Write ``data`` as a new version of the object; the registered one stays in the bucket."""
    before = world.versions(version.artifact_uri)
    world.write(version.artifact_uri, data, **extra)
    after = world.versions(version.artifact_uri)
    assert len(after) == len(before) + 1
    current = next(v for v in after if v["IsLatest"])
    assert current["VersionId"] not in {v["VersionId"] for v in before}


def _other_model_as_new_version(world: World, version: ModelVersion, blobs: Blobs) -> None:
    _new_version(world, version, blobs.intruder.data)


def _forged_metadata(world: World, version: ModelVersion, blobs: Blobs) -> None:
    # The object claims the registered digest in its metadata; only the bytes may be trusted.
    _new_version(world, version, blobs.intruder.data, Metadata={"sha256": version.sha256})


def _other_artifact_version(world: World, version: ModelVersion, blobs: Blobs) -> None:
    """Copy a specific version of another registered artifact (v1's) over v2's key."""
    v1 = world.registry.get_version(MODEL, 1)
    bucket, key = world._location(version.artifact_uri)
    _, source_key = world._location(v1.artifact_uri)
    source_version = world.versions(v1.artifact_uri)[0]["VersionId"]
    before = world.versions(version.artifact_uri)
    world._s3().copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": source_key, "VersionId": source_version},
    )
    assert len(world.versions(version.artifact_uri)) == len(before) + 1


def _same_bytes_new_version(world: World, version: ModelVersion, blobs: Blobs) -> None:
    _new_version(world, version, world.read(version.artifact_uri))


BOTH = ("local", "s3")
TAMPERS = [
    Tamper("bit_flip", "middle", BOTH, IntegrityError, _flip_middle_bit),
    Tamper("truncation", "tail-64", BOTH, IntegrityError, _drop_tail),
    Tamper("truncation", "empty", BOTH, IntegrityError, _empty),
    Tamper("swap", "other-valid-model", BOTH, IntegrityError, _swap),
    Tamper("swap", "symlink-to-other-artifact", ("local",), IntegrityError,
           _symlink_to_other_artifact),
    Tamper("swap", "symlink-outside-root", ("local",), InvalidInput, _symlink_outside_root),
    Tamper("deletion", "delete", BOTH, NotFound, _delete),
    Tamper("deletion", "purge-all-versions", ("s3",), NotFound, _purge_versions),
    Tamper("wrong_s3_version", "other-model", ("s3",), IntegrityError, _other_model_as_new_version),
    Tamper("wrong_s3_version", "forged-metadata", ("s3",), IntegrityError, _forged_metadata),
    Tamper("wrong_s3_version", "other-artifact-version", ("s3",), IntegrityError,
           _other_artifact_version),
    Tamper("control", "same-bytes-new-version", ("s3",), None, _same_bytes_new_version),
]  # fmt: skip
CASES = [
    pytest.param(tamper, backend, id=f"{tamper.id}-{backend}")
    for tamper in TAMPERS
    for backend in tamper.backends
]


def _assert_serves(counts: Counter[str], response: Any, label: str, blob: Blob) -> None:
    """A 200 whose probabilities are exactly those of ``blob``'s own bytes, labelled ``label``."""
    assert response.status_code == 200, response.text
    body = response.json()
    if "predictions" in body:
        served = (body["model_version"], [p["churn_probability"] for p in body["predictions"]])
        expected = (label, blob.expected)
    else:  # a single row: PROBES[2]
        served = (body["model_version"], [body["churn_probability"]])
        expected = (label, blob.expected[2:3])
    counts["responses compared"] += 1
    counts["served unverified"] += served != expected
    assert served == expected


@pytest.mark.parametrize(("tamper", "backend"), CASES)
def test_tampered_artifact_is_never_loaded_or_served(
    tamper: Tamper, world: World, blobs: Blobs
) -> None:
    counts = RESULTS[tamper.kind]
    v1 = world.publish(blobs.served)
    world.registry.promote(MODEL, v1.version, to="production")
    old_app = world.client()
    _assert_serves(counts, _batch(old_app), "v1", blobs.served)
    assert _files(world.cache) == []  # loaded into memory; no bytes stay on disk

    v2 = world.publish(blobs.candidate)  # verified at registration
    assert v2.sha256 == blobs.candidate.sha256
    tamper.apply(world, v2, blobs)
    parsed_before = len(world.parsed)
    # After the tamper, v2 is served only in the control case, where its bytes are intact.
    after = (blobs.candidate, "v2") if tamper.error is None else (blobs.served, "v1")

    # -- the SDK ------------------------------------------------------------------------------
    sdk_cache = world.folder / "sdk-cache"
    sdk_cache.mkdir()
    destination = world.folder / "download" / "model.ubj"
    if tamper.error is None:
        _, booster = world.registry.load_model(MODEL, version=v2.version, cache_dir=sdk_cache)
        assert booster.num_boosted_rounds() > 0
        world.registry.download(v2, destination)
        assert hashlib.sha256(destination.read_bytes()).hexdigest() == v2.sha256
        assert load_predictor(world.registry, MODEL, version=v2.version).label == "v2"
        counts["sdk cases"] += 3
    else:
        with pytest.raises(tamper.error):
            world.registry.load_model(MODEL, version=v2.version, cache_dir=sdk_cache)
        with pytest.raises(tamper.error):
            load_predictor(world.registry, MODEL, version=v2.version, cache_dir=sdk_cache)
        with pytest.raises(tamper.error):
            world.registry.download(v2, destination)
        assert _files(destination.parent) == []  # not even a temporary file
        # Registering the same artifact again must fail the same way, and register nothing.
        with pytest.raises(tamper.error):
            world.registry.register_model(
                MODEL, run_id=v2.run_id, artifact="model", metadata=blobs.candidate.metadata
            )
        assert world.registry.get_model(MODEL).latest_version == v2.version
        # XGBoost never saw the tampered bytes: the checksum failed before any parse.
        assert world.parsed[parsed_before:] == []
        counts["sdk cases"] += 4
    assert _files(sdk_cache) == []

    # -- the API ------------------------------------------------------------------------------
    world.registry.promote(MODEL, v2.version, to="production")

    # (a) An app already serving v1 refreshes onto the tampered v2 (refresh interval 0: every
    # request re-reads the alias and retries the load).
    blob, label = after
    for _ in range(3):
        _assert_serves(counts, _batch(old_app), label, blob)
    single = old_app.post("/predict/churn", json=PROBES[2], headers=SCORER)
    _assert_serves(counts, single, label, blob)
    model = old_app.get("/health").json()["models"][0]
    assert model["version"] == label
    if tamper.error is None:
        assert model["degraded"] is False
    else:
        assert model["degraded"] is True
        assert model["last_refresh_ok"] is False
        assert model["last_error"] == tamper.error.code  # type: ignore[attr-defined]
        assert old_app.get("/ready").status_code == 200  # a verified model is serving
    counts["api refresh cases"] += 1

    # (b) An app started on the tampered production version.
    new_app = world.client()
    batch = _batch(new_app)
    single = new_app.post("/predict/churn", json=PROBES[2], headers=SCORER)
    if tamper.error is None:
        _assert_serves(counts, batch, "v2", blobs.candidate)
        _assert_serves(counts, single, "v2", blobs.candidate)
    else:
        code = "model_integrity_error" if tamper.error is IntegrityError else "model_unavailable"
        for answer in (batch, single):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == code
            assert answer.headers["retry-after"]
        model = new_app.get("/health").json()["models"][0]
        assert model["degraded"] is True
        assert model["version"] is None
        assert model["last_error"] == tamper.error.code  # type: ignore[attr-defined]
        assert new_app.get("/ready").status_code == 503
    counts["api start cases"] += 1

    # (c) A request pinned to the tampered version.
    pinned = _batch(old_app, version=v2.version)
    if tamper.error is None:
        _assert_serves(counts, pinned, "v2", blobs.candidate)
    else:
        status = {IntegrityError: 503, NotFound: 404, InvalidInput: 422}[tamper.error]
        assert pinned.status_code == status
        assert pinned.json()["error"]["code"] == tamper.error.code  # type: ignore[attr-defined]
    counts["api pinned cases"] += 1

    # Only registered, verified bytes were ever parsed, and the cache folder keeps no bytes.
    assert set(world.parsed) <= {blobs.served.sha256, blobs.candidate.sha256}
    assert _files(world.cache) == []
    counts["artifacts refused" if tamper.error else "artifacts accepted (control)"] += 1


def _refresh_failures() -> float:
    return REGISTRY.get_sample_value("model_refresh_failures_total", {"model": MODEL}) or 0.0


@pytest.mark.parametrize("backend", ["local"])
def test_missing_artifact_at_start_is_reported_as_such(world: World, blobs: Blobs) -> None:
    """Regression: a deleted artifact was reported as ``no_production_model`` ("has no
    production version"), and an API starting on it did not count a refresh failure."""
    version = world.publish(blobs.served)
    world.registry.promote(MODEL, version.version, to="production")
    world.delete(version.artifact_uri)
    failures = _refresh_failures()
    client = world.client()
    assert _refresh_failures() == failures + 1
    response = _batch(client)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "model_unavailable"
    assert "no production version" not in error["message"]
    assert client.get("/health").json()["models"][0]["last_error"] == "not_found"


@pytest.mark.parametrize("backend", ["local"])
def test_opted_in_pickle_without_joblib_is_refused_not_a_crash(
    world: World, blobs: Blobs, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: with the opt-in on and joblib missing, loading raised a bare ImportError
    (a 500 on a pinned request) instead of the SDK's ``InvalidInput``."""
    monkeypatch.setitem(sys.modules, "joblib", None)  # ``import joblib`` now raises ImportError
    v1 = world.publish(blobs.served)
    world.registry.promote(MODEL, v1.version, to="production")
    source = world.folder / "model.pkl"
    source.write_bytes(_payload(canary, 2))
    run = world.logger.log_experiment(name="churn", artifacts={"model": source})
    pickled = world.registry.register_model(
        MODEL, run_id=run.run_id, artifact="model", flavor="sklearn", allow_pickle=True,
        metadata=blobs.served.metadata,
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="joblib"):
        world.registry.load_model(MODEL, version=pickled.version, allow_pickle=True)
    client = world.client(ALLOW_PICKLE_MODELS="true")
    response = _batch(client, version=pickled.version)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    _count_pickle("opted in, joblib missing", canary)


@pytest.mark.parametrize("backend", ["s3"])
def test_wrong_version_cases_run_on_a_versioned_bucket(world: World) -> None:
    """The S3 cases above rely on versioning, which ``initialize`` turns on."""
    bucket, _ = world._location(world.artifact_uri + "/x")
    status = world._s3().get_bucket_versioning(Bucket=bucket).get("Status")
    assert status == "Enabled"


# -- 2. pickle canary -----------------------------------------------------------------------


def _exploit(canary: Path) -> object:
    """An object whose unpickling writes ``canary`` (through ``builtins.exec``, as real
    payloads do; nothing of this test module is needed to run it)."""

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (exec, (f"open({str(canary)!r}, 'w').write('pwned')",))

    return Exploit()


def _payload(canary: Path, protocol: int) -> bytes:
    return pickle.dumps(_exploit(canary), protocol=protocol)


def _joblib_payload(canary: Path, folder: Path) -> tuple[str, bytes]:
    """A compressed joblib file if joblib is installed; else what one is (a zlib'd pickle)."""
    try:
        import joblib  # type: ignore[import-not-found]
    except ImportError:
        return "joblib-like (zlib pickle; joblib not installed)", zlib.compress(_payload(canary, 4))
    path = folder / "exploit.joblib"
    joblib.dump(_exploit(canary), path, compress=3)
    return "joblib.dump (compressed)", path.read_bytes()


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary" / "pwned.txt"
    path.parent.mkdir()
    # Positive control: the payload does write the canary when something unpickles it.
    pickle.loads(_payload(path, 2))
    assert path.read_text() == "pwned"
    path.unlink()
    yield path
    assert not path.exists(), "a pickle uploaded as a model was executed"


def _count_pickle(route: str, canary: Path) -> None:
    RESULTS["pickle_canary"]["cases"] += 1
    RESULTS["pickle_canary"]["canary written"] += canary.exists()
    assert not canary.exists(), f"{route}: the canary appeared"


def test_pickle_uploaded_as_a_model_never_executes(
    world: World, blobs: Blobs, canary: Path
) -> None:
    payloads = {
        "pickle protocol 0 as model.pkl": ("model.pkl", _payload(canary, 0)),
        "pickle protocol 2 as model.json": ("model.json", _payload(canary, 2)),
        "pickle protocol 5 as model.ubj": ("model.ubj", _payload(canary, 5)),
    }
    label, joblib_bytes = _joblib_payload(canary, world.folder)
    payloads[label] = ("model.joblib", joblib_bytes)
    assert not canary.exists()

    v1 = world.publish(blobs.served)
    world.registry.promote(MODEL, v1.version, to="production")
    serving = world.client()
    assert _batch(serving).status_code == 200

    for label, (filename, data) in payloads.items():
        source = world.folder / "payloads" / uuid.uuid4().hex / filename
        source.parent.mkdir(parents=True)
        source.write_bytes(data)
        # Upload routes: a run's artifact, and log_experiment's artifacts mapping.
        with world.logger.start_run("churn") as run:
            run.log_artifact(source, name="model")
        logged = world.logger.log_experiment(name="churn", artifacts={"model": source})
        _count_pickle(f"{label}: upload", canary)

        for run_id in (run.run_id, logged.run_id):
            # As the xgboost flavor: refused before XGBoost parses a byte.
            with pytest.raises(InvalidInput, match=r"pickle|not XGBoost"):
                world.registry.register_model(MODEL, run_id=run_id, artifact="model")
            _count_pickle(f"{label}: register as xgboost", canary)
            # As a pickle flavor without the opt-in: refused before the download.
            for flavor in (Flavor.SKLEARN, Flavor.JOBLIB):
                with pytest.raises(InvalidInput, match="allow_pickle"):
                    world.registry.register_model(
                        MODEL, run_id=run_id, artifact="model", flavor=flavor
                    )
                _count_pickle(f"{label}: register as {flavor} without allow_pickle", canary)
        assert world.registry.get_model(MODEL).latest_version == v1.version

        # The flavor functions themselves, handed the file directly.
        with pytest.raises(InvalidInput):
            check_xgboost_artifact(source)
        with pytest.raises(InvalidInput):
            load_xgboost(data)  # XGBoost's parser reads JSON/UBJ only, never a pickle
        for flavor in (Flavor.SKLEARN, Flavor.JOBLIB):
            with pytest.raises(InvalidInput, match="opt-in"):
                load_model(source, flavor)
        _count_pickle(f"{label}: flavor loaders", canary)

    # Registered with the opt-in, but loaded without it: the SDK and an API without
    # ALLOW_PICKLE_MODELS refuse it.
    filename, data = payloads["pickle protocol 2 as model.json"]
    for flavor in (Flavor.SKLEARN, Flavor.JOBLIB):
        source = world.folder / "opted-in" / flavor.value / filename
        source.parent.mkdir(parents=True)
        source.write_bytes(data)
        run = world.logger.log_experiment(name="churn", artifacts={"model": source})
        version = world.registry.register_model(
            MODEL, run_id=run.run_id, artifact="model", flavor=flavor, allow_pickle=True,
            metadata=blobs.served.metadata,
        )  # fmt: skip
        _count_pickle(f"{flavor} registered with allow_pickle", canary)
        with pytest.raises(InvalidInput, match="ALLOW_PICKLE_MODELS"):
            world.registry.load_model(MODEL, version=version.version)
        with pytest.raises(InvalidInput, match="ALLOW_PICKLE_MODELS"):
            load_predictor(world.registry, MODEL, version=version.version)
        _count_pickle(f"{flavor} loaded by the SDK without allow_pickle", canary)

        assert world.settings().allow_pickle_models is False
        promoted = serving.post(
            f"/models/{MODEL}/versions/{version.version}/promote",
            json={"to": "production"},
            headers=ADMIN,
        )
        assert promoted.status_code == 200, promoted.text
        # Refreshes onto the pickle, refuses it, keeps serving v1.
        _assert_serves(RESULTS["pickle_canary"], _batch(serving), "v1", blobs.served)
        assert serving.get("/health").json()["degraded"] is True
        fresh = world.client()  # starts on the pickle: nothing to serve
        response = _batch(fresh)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
        pinned = _batch(serving, version=version.version)
        assert pinned.status_code == 422
        assert pinned.json()["error"]["code"] == "invalid_input"
        _count_pickle(f"{flavor} served by an API without ALLOW_PICKLE_MODELS", canary)

    # A registered xgboost version whose bytes are replaced by a pickle: checksum mismatch.
    world.registry.promote(MODEL, v1.version, to="production")
    for label, (_, data) in payloads.items():
        swapped = world.publish(blobs.candidate)
        world.write(swapped.artifact_uri, data)
        with pytest.raises(IntegrityError):
            world.registry.load_model(MODEL, version=swapped.version)
        _count_pickle(f"{label} swapped into an xgboost artifact: SDK", canary)
    world.registry.promote(MODEL, swapped.version, to="production")
    _assert_serves(RESULTS["pickle_canary"], _batch(serving), "v1", blobs.served)
    response = _batch(world.client())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_integrity_error"
    _count_pickle("pickle swapped into an xgboost artifact: API", canary)

    pickle_hashes = {hashlib.sha256(blob).hexdigest() for _, blob in payloads.values()}
    assert not pickle_hashes & set(world.parsed)
    assert _files(world.cache) == []


# -- 3. AST audit ---------------------------------------------------------------------------

PRODUCT_PACKAGES = ("tracking", "models", "functions", "layers")
#: The only unpickling sites product code may hold, each behind the opt-in.
EXPECTED_SITES = {("tracking/flavors.py", "load_model", "joblib.load")}


def _product_sites() -> tuple[int, list[Site]]:
    files = sorted(
        path
        for package in PRODUCT_PACKAGES
        if (ROOT / package).is_dir()
        for path in (ROOT / package).rglob("*.py")
        if ".venv" not in path.parts
    )
    sites = [
        site
        for path in files
        for site in find_sites(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    ]
    return len(files), sites


def test_product_code_unpickles_only_behind_the_opt_in() -> None:
    scanned, sites = _product_sites()
    assert scanned > 20  # the walk found the packages
    unguarded = [site for site in sites if not site.guarded]
    assert unguarded == [], f"pickle loads reachable without allow_pickle: {unguarded}"
    assert {site.key for site in sites} == EXPECTED_SITES
    RESULTS["ast_audit"]["files scanned"] += scanned
    RESULTS["ast_audit"]["guarded sites"] += len(sites)
    RESULTS["ast_audit"]["unguarded sites"] += len(unguarded)


def test_the_opt_in_is_off_unless_asked_for() -> None:
    """Every ``allow_pickle`` parameter defaults to False, and nothing passes a literal True."""
    defaults = 0
    for package in PRODUCT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    args = node.args
                    positional = [*args.posonlyargs, *args.args]
                    pairs = list(zip(positional[len(positional) - len(args.defaults):],
                                     args.defaults, strict=True))  # fmt: skip
                    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults,
                                                      strict=True) if d is not None]  # fmt: skip
                    for arg, default in pairs:
                        if arg.arg == "allow_pickle":
                            assert isinstance(default, ast.Constant), f"{path}:{node.lineno}"
                            assert default.value is False, f"{path}:{node.lineno}"
                            defaults += 1
                if isinstance(node, ast.keyword) and node.arg in {
                    "allow_pickle",
                    "allow_pickle_models",
                }:
                    assert not (isinstance(node.value, ast.Constant) and node.value.value), (
                        f"{path}:{node.value.lineno} passes {node.arg}=True"
                    )
    assert defaults >= 3  # flavors.load_model, ModelRegistry.load_model/register_model, ...
    assert ApiSettings.model_fields["allow_pickle_models"].default is False
    assert inspect.signature(ModelRegistry.load_model).parameters["allow_pickle"].default is False


def _code(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


UNGUARDED_SNIPPETS = {
    "plain loads": """
        import pickle
        def f(b):
            return pickle.loads(b)
    """,
    "module alias": """
        import pickle as p
        def f(b):
            return p.load(b)
    """,
    "from import alias": """
        from pickle import loads as l
        def f(b):
            return l(b)
    """,
    "reference only": """
        import dill
        DECODE = dill.loads
    """,
    "cloudpickle": """
        import cloudpickle
        def f(b):
            return cloudpickle.loads(b)
    """,
    "joblib at module level": """
        import joblib
        model = joblib.load("m.pkl")
    """,
    "unpickler class": """
        import pickle
        def f(handle):
            return pickle.Unpickler(handle).load()
    """,
    "dunder import": """
        def f(b):
            return __import__("pickle").loads(b)
    """,
    "importlib": """
        import importlib
        def f(b):
            return importlib.import_module("dill").loads(b)
    """,
    "getattr": """
        import pickle
        def f(b):
            return getattr(pickle, "loads")(b)
    """,
    "star import": """
        from pickle import *
    """,
    "pandas": """
        import pandas as pd
        def f(path):
            return pd.read_pickle(path)
    """,
    "numpy allow_pickle": """
        import numpy as np
        def f(path):
            return np.load(path, allow_pickle=True)
    """,
    "numpy kwargs": """
        import numpy as np
        def f(path, **kw):
            return np.load(path, **kw)
    """,
    "torch": """
        import torch
        def f(path):
            return torch.load(path)
    """,
    "shelve": """
        import shelve
        def f(path):
            return shelve.open(path)
    """,
    "guard that only warns": """
        import logging, pickle
        def f(b, *, allow_pickle=False):
            if not allow_pickle:
                logging.warning("a pickle!")
            return pickle.loads(b)
    """,
    "guard that can return early": """
        import pickle
        def f(b, *, allow_pickle=False):
            if not allow_pickle:
                if b:
                    return None
                raise ValueError
            return pickle.loads(b)
    """,
    "guard after the load": """
        import pickle
        def f(b, *, allow_pickle=False):
            x = pickle.loads(b)
            if not allow_pickle:
                raise ValueError
            return x
    """,
    "load in the else branch": """
        import pickle
        def f(b, *, allow_pickle=False):
            if allow_pickle:
                pass
            else:
                return pickle.loads(b)
    """,
    "opt-in rebound": """
        import pickle
        def f(b, *, allow_pickle=False):
            allow_pickle = True
            if not allow_pickle:
                raise ValueError
            return pickle.loads(b)
    """,
    "opt-in is not a parameter": """
        import pickle
        allow_pickle = False
        def f(b):
            if not allow_pickle:
                raise ValueError
            return pickle.loads(b)
    """,
    "guard in the outer function only": """
        import pickle
        def f(b, *, allow_pickle=False):
            def g():
                return pickle.loads(b)
            if not allow_pickle:
                raise ValueError
            return g
    """,
    "weak or-guard": """
        import pickle
        def f(b, *, allow_pickle=False, x=True):
            if allow_pickle or x:
                return pickle.loads(b)
    """,
}
GUARDED_SNIPPETS = {
    "raise before (as tracking.flavors)": """
        def f(path, flavor, *, allow_pickle=False):
            if flavor == "sklearn":
                if not allow_pickle:
                    raise ValueError("needs the opt-in")
                import joblib
                return joblib.load(path)
    """,
    "inside if allow_pickle": """
        import pickle
        def f(b, allow_pickle=False):
            if allow_pickle and b:
                return pickle.loads(b)
            raise ValueError
    """,
    "or-guard that raises": """
        import pickle
        def f(b, x, allow_pickle=False):
            if x or allow_pickle is False:
                raise ValueError
            return pickle.loads(b)
    """,
}
SAFE_SNIPPETS = {
    "numpy without pickles": """
        import numpy as np
        def f(path):
            return np.load(path)
    """,
    "numpy refusing pickles": """
        import numpy as np
        def f(path):
            return np.load(path, allow_pickle=False)
    """,
    "torch weights only": """
        import torch
        def f(path):
            return torch.load(path, weights_only=True)
    """,
    "pickle dumps": """
        import pickle
        def f(o):
            return pickle.dumps(o)
    """,
    "json loads": """
        import json
        def f(b):
            return json.loads(b)
    """,
    "a method called load": """
        def f(booster, raw):
            return booster.load_model(raw)
    """,
}


@pytest.mark.parametrize("name", sorted(UNGUARDED_SNIPPETS))
def test_audit_flags_unguarded_loads(name: str) -> None:
    sites = find_sites(_code(UNGUARDED_SNIPPETS[name]))
    assert sites, f"{name}: not detected"
    assert not all(site.guarded for site in sites), f"{name}: wrongly taken as guarded"
    RESULTS["ast_audit"]["self-test unguarded snippets flagged"] += 1


@pytest.mark.parametrize("name", sorted(GUARDED_SNIPPETS))
def test_audit_accepts_the_opt_in_guard(name: str) -> None:
    sites = find_sites(_code(GUARDED_SNIPPETS[name]))
    assert sites
    assert all(site.guarded for site in sites)
    RESULTS["ast_audit"]["self-test guarded snippets accepted"] += 1


@pytest.mark.parametrize("name", sorted(SAFE_SNIPPETS))
def test_audit_ignores_safe_calls(name: str) -> None:
    assert find_sites(_code(SAFE_SNIPPETS[name])) == []


def test_audit_fails_on_a_new_unguarded_site_in_product_code() -> None:
    """The pinned list catches a new load even if it were guarded: sites are reviewed."""
    _, sites = _product_sites()
    extra = find_sites(_code(UNGUARDED_SNIPPETS["plain loads"]), "tracking/new_module.py")
    assert {site.key for site in [*sites, *extra]} != EXPECTED_SITES
    assert any(not site.guarded for site in extra)
