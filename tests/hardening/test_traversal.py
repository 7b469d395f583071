"""Traversal and SSRF (issue 7, item 10): hostile strings in every path, query and body field.

The corpus (tests/hardening/hostile.py, 96 strings plus 6 suffixes appended to each field's valid
value) is sent, with an admin key and every other field valid, to every field of every API
operation, as the app itself declares them in its OpenAPI schema: path and query parameters, the
``Idempotency-Key`` header, and every string field of every JSON body (nested objects and array
items walked). Path and query values go twice: percent-encoded so that the string arrives as it
is (``quote(s, safe="")``, dots included), and raw, as a client that does not encode would send
them. The whole run happens twice, on the embedded store (SQLite + a local folder) and on the AWS
backend (DynamoDB + S3 on moto in-process), each with a trained churn model in production.

What is checked, per case:

- never a 5xx, never a traceback, never a file's or a metadata service's content in the answer;
- a 4xx has the one error shape ``{"error": {"code", "message", "request_id"}}``, with the
  request id of the ``X-Request-ID`` header and a bounded message (no 10,000-character echo);
- the value that reached the server is computed from the request as sent (a raw ``#`` cuts the
  URL, a raw ``..`` segment is resolved by the client, a decoded ``/`` splits a path segment);
  sent encoded, a path value must arrive exactly as it was. If the value is not valid for its
  field, the answer is a 4xx. "Valid" is decided per field from the schema: pattern, length,
  integer range (digits only); for the fields whose schema is a free string: ``filter`` and
  ``order_by`` are valid when the SDK's parser accepts them, an opaque ``page_token`` only when
  empty (the first page), and ``reason`` is free text of at most 1000 characters. A valid value
  may get a 2xx (e.g. the alias ``_``) or a 404/409; a name the schema allows but the SDK's rule
  does not (``a..b``) finds nothing and writes nothing. An accepted ``reason`` must be stored
  exactly as sent (text, never interpreted). A 3xx is only Starlette's trailing-slash redirect,
  on the same host, for a path whose decoded ``/`` no longer fits the route.

The SDK's entry points that take names, keys and URIs get the same corpus: each raises
``InvalidInput`` or ``NotFound`` (a valid name may also succeed, or meet ``Conflict`` /
``AlreadyExists``; reading the history of a metric that cannot exist answers an empty list), and
nothing else. URIs shaped like the store's own that escape its folder, bucket or prefix are
refused too. Crafted page tokens (base64 JSON the server never made) are never a 5xx either.
What the corpus found is pinned at the end (crafted page tokens used to be a 500 on SQLite, and a
lone surrogate escaped the SQLite store as UnicodeEncodeError).

Afterwards: every object in the bucket (every version, every delete marker) and every file under
the artifact folder has a key ``[<prefix>/]runs/<run_id>/<name>/<file>`` whose three names pass
``validate_name``; moto holds no bucket and no table but ours; every file the process wrote while
the corpus ran (an audit hook sees each ``open`` for writing, ``mkdir``, ``rename``, ...) is inside
the store's folder (or the SDK's own random ``tracking-*`` temporary folders), and no file or
folder named after a hostile string exists anywhere under the test session's temporary folder.
The keys are checked after every field's cases, so the checks hold however pytest-xdist spreads
the tests over workers. The same audit hook refuses, and records, any outbound connection or
name lookup (``socket.connect``, ``socket.getaddrinfo``, ``urllib.Request``,
``http.client.connect``, ...) and any process spawn while a case runs: in process, with moto's
``mock_aws``, there must be none. A self-test proves that the hook stops
``socket.create_connection(("169.254.169.254", 80))`` before it connects.

Counts (cases per field, per backend, status histogram) are printed: run with ``-s``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import sys
import tempfile
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette import testclient

from functions.api.apidoc import openapi_schema
from functions.api.errors import MAX_MESSAGE
from functions.api.main import create_app
from models.rag.train import TrainConfig as RagConfig
from models.rag.train import run_training as train_rag
from tests.api.conftest import ADMIN, SEED_REQUEST, Store, make_settings, new_store
from tests.hardening.hostile import CORPUS, LONG, Hostile, for_field
from tracking import ExperimentLogger, ModelRegistry
from tracking.artifacts.base import OBJECT_NAMESPACES, object_key
from tracking.errors import AlreadyExists, Conflict, InvalidInput, NotFound, TrackingError
from tracking.search import parse_filter, parse_order_by
from tracking.validation import validate_name

BACKENDS = ["sqlite", "moto"]
BUCKET = "hostile-artifacts"
PREFIX = "artifacts"
TABLE_PREFIX = "hostile"

# -- the audit hook: no outbound connection, no process, no write outside the store -------------

NETWORK_EVENTS = frozenset({
    "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
    "socket.gethostbyaddr", "socket.getnameinfo", "socket.sendto", "socket.sendmsg",
    "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
    "imaplib.open", "poplib.connect", "nntplib.connect", "webbrowser.open",
})  # fmt: skip
SPAWN_EVENTS = frozenset({"os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn"})
#: File system changes: event -> (index of the path argument(s), index of its dir_fd or -1).
#: A path relative to a directory descriptor is one ``shutil.rmtree`` walks; its own event,
#: with the tree's root, is recorded instead.
WRITE_EVENTS: dict[str, tuple[tuple[int, ...], int]] = {
    "os.mkdir": ((0,), 2), "os.rename": ((0, 1), 2), "os.link": ((0, 1), 2),
    "os.symlink": ((0, 1), 2), "os.remove": ((0,), 1), "os.rmdir": ((0,), 1),
    "os.chmod": ((0,), 2), "os.truncate": ((0,), -1), "os.chown": ((0,), 3),
    "shutil.copyfile": ((0, 1), -1), "shutil.move": ((0, 1), -1), "shutil.rmtree": ((0,), -1),
}  # fmt: skip
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class OutboundBlocked(RuntimeError):
    """Raised by the audit hook when a watched operation tries to reach the network or spawn."""


@dataclass
class Watch:
    """What the hook saw while it was switched on (hooks cannot be removed: it checks ``on``)."""

    on: bool = False
    record_writes: bool = False
    network: list[tuple[str, str]] = field(default_factory=list)
    spawns: list[tuple[str, str]] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


WATCH = Watch()


def _written_paths(event: str, args: tuple[Any, ...]) -> list[str]:
    if event == "open":
        path, mode, flags = (*args, None, None, None)[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing and isinstance(path, str | bytes | os.PathLike):
            return [os.fsdecode(path)]
        return []
    indexes, dir_fd = WRITE_EVENTS.get(event, ((), -1))
    if 0 <= dir_fd < len(args) and isinstance(args[dir_fd], int) and args[dir_fd] >= 0:
        return []
    return [
        os.fsdecode(args[i])
        for i in indexes
        if i < len(args) and isinstance(args[i], str | bytes | os.PathLike)
    ]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not WATCH.on:
        return
    if event in NETWORK_EVENTS:
        with WATCH.lock:
            WATCH.network.append((event, repr(args)[:200]))
        raise OutboundBlocked(f"{event} attempted: {repr(args)[:200]}")
    if event in SPAWN_EVENTS:
        with WATCH.lock:
            WATCH.spawns.append((event, repr(args)[:200]))
        raise OutboundBlocked(f"{event} attempted: {repr(args)[:200]}")
    if WATCH.record_writes and (event == "open" or event in WRITE_EVENTS):
        paths = _written_paths(event, args)
        if paths:
            with WATCH.lock:
                WATCH.writes.extend(paths)


sys.addaudithook(_audit)


@contextlib.contextmanager
def watching(*, writes: bool = False) -> Iterator[Watch]:
    """Switch the hook on (network and spawns refused; writes recorded when asked)."""
    with WATCH.lock:
        WATCH.network.clear()
        WATCH.spawns.clear()
        WATCH.writes.clear()
    WATCH.on, WATCH.record_writes = True, writes
    try:
        yield WATCH
    finally:
        WATCH.on, WATCH.record_writes = False, False


# -- the operations and their fields, from the app's own schema ---------------------------------

SCHEMA = openapi_schema()
#: What the schema documents (functions/api/apidoc.py): both demo models.
SERVED = "churn,rag"
COMPONENTS: dict[str, Any] = SCHEMA["components"]["schemas"]
#: A valid body per request-body model; every body the app declares must be here.
VALID_BODIES: dict[str, Any] = {
    "ChurnFeatures": SEED_REQUEST,
    "ChurnBatchRequest": {"rows": [SEED_REQUEST]},
    "RagQuery": {"query": "how do I roll back a model?", "k": 3},
    "RagBatchRequest": {"rows": [{"query": "how do I roll back a model?", "k": 3}]},
    "PromoteRequest": {"to": "challenger", "reason": "traversal suite"},
    "TrafficRequest": {
        "weights": {"production": 100},
        "shadow": [],
        "sticky": "player_id",
        "reason": "traversal suite",
    },
    "RollbackRequest": {"alias": "challenger", "reason": "traversal suite"},
    # "key": None is its default; a hostile key next to the request id is refused (one of them).
    "FeedbackRequest": [
        {"request_id": "r1", "key": None, "label": 1, "time": "2026-12-02T18:00:00Z"}
    ],
}
#: Valid values of the query parameters and headers (path values come from the seeded store).
VALID_VALUES = {
    "max_results": "5",
    "page_token": "",
    "filter": "metrics.auc > 0.1",
    "order_by": "metrics.auc DESC",
    "alias": "production",
    "version": "1",
    "Idempotency-Key": "traversal-key",
}
_DIGITS = re.compile(r"[0-9]+")


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a schema (``anyOf`` flattened, references resolved)."""
    schema = _resolve(schema)
    options = [_resolve(o) for o in schema.get("anyOf", [schema])]
    return [o for o in options if o.get("type") != "null"]


def _body_model(schema: dict[str, Any]) -> str:
    for option in schema.get("anyOf", [schema]):
        if "$ref" in option:
            return str(option["$ref"]).rsplit("/", 1)[-1]
    raise AssertionError(f"request body without a model: {schema}")


def _string_leaves(
    schema: dict[str, Any], pointer: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every string field of a body schema, nested objects and array items included."""
    for option in _options(schema):
        kind = option.get("type")
        if kind == "string":
            yield pointer, option
        elif kind == "object" or "properties" in option:
            for key, sub in option.get("properties", {}).items():
                yield from _string_leaves(sub, (*pointer, key))
        elif kind == "array":
            yield from _string_leaves(option.get("items", {}), (*pointer, 0))


@dataclass(frozen=True)
class FieldSpec:
    method: str
    template: str
    location: str  # path | query | header | body
    name: str
    schema: dict[str, Any] = field(hash=False, compare=False)
    body_model: str | None = None
    pointer: tuple[str | int, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.method} {self.template} {self.location}:{self.name}"


def api_fields(schema: dict[str, Any]) -> list[FieldSpec]:
    """Every parameter and every body string field of every operation in ``schema``."""
    found = []
    for template, methods in schema["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody")
            model = (
                _body_model(body["content"]["application/json"]["schema"]) if body else None
            )  # fmt: skip
            for parameter in operation.get("parameters", []):
                found.append(FieldSpec(method.upper(), template, parameter["in"],
                                       parameter["name"], parameter["schema"], model))  # fmt: skip
            if model is not None:
                for pointer, leaf in _string_leaves(COMPONENTS[model]):
                    name = ".".join("[]" if isinstance(p, int) else p for p in pointer)
                    name = name.replace(".[]", "[]")
                    found.append(FieldSpec(method.upper(), template, "body", name, leaf, model,
                                           pointer))  # fmt: skip
    return found


#: A traffic policy's reason and shadow aliases are stored and answered back verbatim (the
#: policy is the response), so a hostile reason comes back by design and trips the suite-wide
#: body hygiene check; their validation is tested in tests/api/test_traffic.py and
#: tests/contract/test_traffic.py instead.
_ECHOED = {("/models/{name}/traffic", "reason"), ("/models/{name}/traffic", "shadow[]")}
FIELDS = [
    spec for spec in api_fields(SCHEMA)
    if spec.location != "body" or (spec.template, spec.name) not in _ECHOED
]  # fmt: skip


# -- what counts as a valid value of a field ----------------------------------------------------


def _parses(check: Callable[[], object]) -> bool:
    try:
        check()
    except InvalidInput:
        return False
    return True


def _pattern_matches(pattern: str, value: str) -> bool:
    """JSON Schema's rule: a pattern is a search, not anchored (``\\S``: "not all blank").

    Anchored patterns are matched whole: Python's ``$`` also matches before a final newline,
    which the server's regex engine (pydantic-core's) does not.
    """
    if pattern.startswith("^") and pattern.endswith("$"):
        return re.fullmatch(pattern, value) is not None
    return re.search(pattern, value) is not None


def valid_for(spec: FieldSpec, value: str | list[str] | None) -> bool:
    """Whether ``value`` (as it reached the server) is a legitimate value of ``spec``."""
    if value is None:
        return True  # absent: the field's default applies
    if isinstance(value, list):
        return all(valid_for(spec, item) for item in value)
    if spec.name == "filter":
        return len(value) <= 4000 and _parses(lambda: parse_filter(value))
    if spec.name == "order_by":
        return _parses(lambda: parse_order_by([value]))
    if spec.name == "page_token":
        return value == ""  # opaque: only the server's own tokens, or none, are valid
    if spec.name == "reason":  # free text (the schema's only rule is the length)
        return len(value) <= 1000
    options = _options(spec.schema)
    for option in options:
        kind = option.get("type")
        if kind == "array":
            option = _options(option.get("items", {}))[0]
            kind = option.get("type")
        if kind == "integer":
            if _DIGITS.fullmatch(value) and option.get("minimum", 0) <= int(value) <= option.get(
                "maximum", 10**18
            ):
                return True
            continue
        if kind != "string":
            continue
        if len(value) > option.get("maxLength", LONG * 10) or len(value) < option.get(
            "minLength", 0
        ):
            continue
        pattern = option.get("pattern")
        if pattern is not None and not _pattern_matches(pattern, value):
            continue
        return True
    return False


# -- the store, the app and the client, once per backend ----------------------------------------


@dataclass
class Target:
    backend: str
    store: Store
    client: TestClient
    run_id: str
    metric: str
    folder: Path
    s3: Any = None
    dynamodb: Any = None
    statuses: Counter[str] = field(default_factory=Counter)
    per_field: Counter[str] = field(default_factory=Counter)
    unsendable: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    rerouted: int = 0

    @property
    def path_values(self) -> dict[str, str]:
        return {"name": "churn", "version": "1", "run_id": self.run_id, "key": self.metric}


def _aws_store(folder: Path) -> Store:
    tracking_uri = f"dynamodb://{TABLE_PREFIX}"
    artifact_uri = f"s3://{BUCKET}/{PREFIX}"
    logger = ExperimentLogger(tracking_uri, artifact_uri)
    logger.metadata.initialize()
    logger.artifacts.initialize()
    registry = ModelRegistry(store=logger.metadata, artifact_store=logger.artifacts, actor="sdk")  # type: ignore[arg-type]
    return Store(tracking_uri, artifact_uri, logger, registry, folder)


class _ErrorLog(contextlib.AbstractContextManager["_ErrorLog"]):
    """Collects every ERROR record logged with a traceback (the app logs unhandled errors so)."""

    def __init__(self) -> None:
        import logging

        self.records: list[str] = []
        outer = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.ERROR:
                    outer.records.append(f"{record.name}: {record.getMessage()}")

        self._handler = Handler()
        self._logging = logging

    def __enter__(self) -> _ErrorLog:
        self._logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logging.getLogger().removeHandler(self._handler)


@pytest.fixture(scope="module", params=BACKENDS)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The store (trained: churn v1 in production, v2 registered), its app and a client."""
    backend: str = request.param
    folder = tmp_path_factory.mktemp(f"traversal-{backend}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.chdir(folder))
        # Starlette's TestClient decodes the path twice (httpx's URL.path is decoded already,
        # and it unquotes that again), so "%252e" would arrive as "." instead of "%2e".
        # uvicorn and Mangum decode once; so does the client here.
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setattr(testclient, "unquote", lambda path: path)
        s3 = dynamodb = None
        if backend == "moto":
            import boto3
            from moto import mock_aws

            stack.enter_context(mock_aws())
            with watching():
                store = _aws_store(folder)
            s3 = boto3.client("s3", region_name="us-east-1")
            dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        else:
            store = new_store(folder)
        with watching():
            result = store.train(promote="production")
            store.registry.register_model("churn", run_id=result.run_id, artifact="model")
            train_rag(RagConfig(), promote="production", logger=store.logger,
                      registry=store.registry, show_progress=False)  # fmt: skip
        metric = sorted(store.logger.get_run(result.run_id).metrics)[0]
        app = create_app(make_settings(store, SERVED_MODELS=SERVED))
        client = stack.enter_context(
            TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        )
        yield Target(backend, store, client, result.run_id, metric, folder, s3, dynamodb)
        store.logger.close()


# -- one case -----------------------------------------------------------------------------------

#: What an answer must never contain: a file's or a metadata service's content, an evaluated
#: template, a command's output, a traceback.
LEAK_MARKERS = ("root:x:0:0", "[fonts]", "ami-id", "instance-id", "AccessKeyId",
                "SecretAccessKey", "uid=0(", "Traceback (most recent call last)")  # fmt: skip


def _quote_segment(value: str) -> str:
    # quote() leaves '.' alone and the client would resolve a '.' or '..' segment itself.
    return quote(value, safe="").replace(".", "%2E")


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


ROUTE_REGEXES = [_template_regex(template) for template in SCHEMA["paths"]]


@dataclass
class Sent:
    """A case as sent, and the value of the field as the server received it."""

    response: Any
    route_kept: bool
    arrived: str | list[str] | None


def _send(target: Target, spec: FieldSpec, value: str, *, raw: bool) -> Sent | None:
    """Send one case; ``None`` when no HTTP client could carry the value (refused client-side)."""
    path_values = dict(target.path_values)
    body: Any = None
    if spec.body_model is not None:
        body = json.loads(json.dumps(VALID_BODIES[spec.body_model]))
    if spec.name == "reason":
        # A real move each time, so that the reason is recorded: promote challenger to the
        # version it is not at; before a rollback, move it first so there is one to undo.
        registry = target.store.registry
        other = 2 if registry.get_model("churn").aliases.get("challenger") == 1 else 1
        if spec.body_model == "PromoteRequest":
            path_values["version"] = str(other)
        else:
            registry.promote("churn", other, to="challenger", reason="setup")
    headers = dict(ADMIN)
    query = ""
    try:
        if spec.location == "path":
            path_values[spec.name] = value if raw else _quote_segment(value)
        elif spec.location == "query":
            query = f"?{spec.name}={value if raw else quote(value, safe='')}"
        elif spec.location == "header":
            if not value.isprintable() or not value.isascii():
                return None  # no HTTP client or server carries it
            headers[spec.name] = value
        else:
            node = body
            for part in spec.pointer[:-1]:
                node = node[part]
            node[spec.pointer[-1]] = value
        path = spec.template
        for name, current in path_values.items():
            path = path.replace("{" + name + "}", current)
        content = None
        if body is not None:
            content = json.dumps(body).encode()  # ASCII escapes: a lone surrogate is sendable
            headers["Content-Type"] = "application/json"
        response = target.client.request(spec.method, path + query, content=content,
                                         headers=headers)  # fmt: skip
    except (UnicodeError, httpx2.InvalidURL):
        return None
    url = response.request.url
    decoded = url.path  # what the app's router sees: the path, percent-decoded once
    match = _template_regex(spec.template).fullmatch(decoded)
    arrived: str | list[str] | None = value
    if spec.location == "path":
        arrived = match.group(spec.name) if match else None
    elif spec.location == "query":
        values = url.params.get_list(spec.name)
        arrived = (values if spec.name == "order_by" else values[-1]) if values else None
    return Sent(response, match is not None, arrived)


def _check(
    target: Target, spec: FieldSpec, hostile: Hostile, sent: Sent, *, page_ok: bool = False
) -> list[str]:
    """What is wrong with one answer (nothing: an empty list). ``page_ok``: a 2xx is fine."""
    response = sent.response
    status = response.status_code
    problems = []
    text = response.text
    if status >= 500:
        problems.append(f"{status} (server error)")
    problems += [f"answer contains {marker!r}" for marker in LEAK_MARKERS if marker in text]
    if 400 <= status < 500:
        try:
            error = response.json()["error"]
            assert set(response.json()) == {"error"}
            assert set(error) == {"code", "message", "request_id"}
            assert all(isinstance(error[k], str) and error[k] for k in error)
            assert error["request_id"] == response.headers["x-request-id"]
            assert len(error["message"]) <= MAX_MESSAGE, f"message of {len(error['message'])}"
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"{status} without the error shape ({exc}): {text[:200]}")
    elif 300 <= status < 400:
        # Only the router's trailing-slash redirect, for a path that no longer has the field.
        location = response.headers.get("location", "")
        if sent.route_kept or not location.startswith("http://testserver/"):
            problems.append(f"{status} redirect to {location!r}")
    elif 200 <= status < 300:
        if sent.route_kept and not page_ok and not valid_for(spec, sent.arrived):
            problems.append(f"{status}: accepted {sent.arrived!r:.80}")
        elif not sent.route_kept and not any(
            regex.fullmatch(response.request.url.path) for regex in ROUTE_REGEXES
        ):
            problems.append(f"{status} on no known route: {response.request.url.path[:120]}")
        elif not sent.route_kept:
            # The client resolved a raw "." or ".." segment itself (RFC 3986), so another,
            # valid request was sent (e.g. GET /models): the hostile string never left it.
            target.rerouted += 1
    elif status < 200:
        problems.append(f"unexpected status {status}")
    return problems


def _reasons_recorded(target: Target, action: str, accepted: list[str]) -> list[str]:
    """Accepted reasons are stored as text: the history ends with them, verbatim and in order.

    Read through the SDK: over HTTP, the suite-wide hygiene check (tests/hygiene.py) would
    refuse a body holding the client's own "s3://..." reason.
    """
    if not accepted:
        return []
    history = target.store.registry.history("churn")
    stored = [change.reason for change in history if change.action == action]
    if stored[-len(accepted) :] == accepted:
        return []
    return [f"history does not end with the {len(accepted)} accepted reasons, verbatim"]


def run_field(target: Target, spec: FieldSpec) -> list[str]:
    """Send every hostile string to ``spec`` (encoded, and raw where it applies)."""
    valid = (
        target.path_values.get(spec.name, "x")
        if spec.location == "path"
        else str(_at(VALID_BODIES[spec.body_model], spec.pointer))
        if spec.location == "body" and spec.body_model
        else VALID_VALUES.get(spec.name, "x")
    )
    failures = []
    accepted_reasons: list[str] = []
    for hostile in for_field(valid):
        for raw in (False, True) if spec.location in {"path", "query"} else (False,):
            sent = _send(target, spec, hostile.value, raw=raw)
            variant = "raw" if raw else "encoded"
            if sent is None:
                target.unsendable[spec.label] += 1
                continue
            status = sent.response.status_code
            target.statuses[str(status)] += 1
            target.per_field[spec.label] += 1
            problems = _check(target, spec, hostile, sent)
            # Clearing a policy that is already the default writes nothing, reason included.
            recorded = not spec.template.endswith("/traffic")
            if spec.name == "reason" and recorded and 200 <= status < 300:
                accepted_reasons.append(hostile.value)
            encoded_path = not raw and spec.location == "path" and sent.route_kept
            if encoded_path and sent.arrived != hostile.value:
                problems.append(f"arrived as {sent.arrived!r:.60}, not as sent")
            if status >= 500:
                target.server_errors.append(f"{spec.label} {hostile.id} {variant}")
            failures += [f"{spec.label} [{hostile.id}, {variant}] {p}" for p in problems]
    if spec.name == "reason" and not spec.template.endswith("/traffic"):
        assert len(accepted_reasons) >= 20, "the reason cases should make real moves"
        action = "promote" if spec.body_model == "PromoteRequest" else "rollback"
        recorded = _reasons_recorded(target, action, accepted_reasons)
        failures += [f"{spec.label} {p}" for p in recorded]
    return failures


def _at(body: Any, pointer: tuple[str | int, ...]) -> Any:
    for part in pointer:
        body = body[part]
    return body


# -- the tests ----------------------------------------------------------------------------------


def _connect_raw(address: tuple[str, int]) -> None:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        sock.connect(address)


def test_the_hook_stops_a_connection_to_the_metadata_address() -> None:
    """The audit hook refuses lookups and connections before they happen, and records them."""
    attempts: list[Callable[[], object]] = [
        lambda: socket.create_connection(("169.254.169.254", 80), timeout=0.2),
        lambda: _connect_raw(("169.254.169.254", 80)),
        lambda: urllib.request.urlopen("http://169.254.169.254/latest/meta-data/", timeout=0.2),
        lambda: http.client.HTTPConnection("169.254.169.254", 80, timeout=0.2).connect(),
        lambda: socket.getaddrinfo("metadata.google.internal", 80),
        lambda: os.system("true"),
    ]
    with watching() as seen:
        seen.network.clear()
        seen.spawns.clear()
        for attempt in attempts:
            with pytest.raises(OutboundBlocked):
                attempt()
        events = {event for event, _ in seen.network + seen.spawns}
        seen.network.clear()
        seen.spawns.clear()
    assert {"socket.getaddrinfo", "socket.connect", "urllib.Request",
            "http.client.connect", "os.system"} <= events, events  # fmt: skip
    # Switched off, the hook lets a local socket pair talk (no address, nothing leaves).
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"


def test_every_route_parameter_is_in_the_fuzzed_fields() -> None:
    """The fields come from the schema; the schema has every route and each route's parameters."""
    app = create_app(make_settings_for_docs())
    labels = {f"{spec.method} {spec.template}" for spec in FIELDS}
    checked = 0
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue  # /predict/{name} for names not served: a 404, fuzzed through FIELDS' paths
        for method in context.methods or ():
            operation = SCHEMA["paths"][str(context.path)][method.lower()]
            for param in route.dependant.path_params + route.dependant.query_params:
                name = param.alias or param.name
                assert any(s.template == context.path and s.name == name for s in FIELDS), name
                checked += 1
            if operation.get("parameters") or operation.get("requestBody"):
                assert f"{method} {context.path}" in labels
    assert checked >= 20
    body_fields = {(s.body_model, s.name) for s in FIELDS if s.location == "body"}
    assert {("ChurnFeatures", "player_id"), ("ChurnBatchRequest", "rows[].player_id"),
            ("PromoteRequest", "to"), ("PromoteRequest", "reason"),
            ("RollbackRequest", "alias"), ("RollbackRequest", "reason")} <= body_fields  # fmt: skip
    assert {s.body_model for s in FIELDS if s.body_model} <= set(VALID_BODIES)
    assert len(CORPUS) >= 40


def make_settings_for_docs() -> Any:
    from functions.api.settings import ApiSettings

    return ApiSettings(TRACKING_URI="sqlite:///:memory:", LOAD_MODELS_ON_START=False, API_KEYS="[]",
                       SERVED_MODELS=SERVED)  # fmt: skip


@pytest.mark.parametrize("spec", FIELDS, ids=[spec.label for spec in FIELDS])
def test_hostile_strings_in_every_field(target: Target, spec: FieldSpec) -> None:
    with _ErrorLog() as errors, watching(writes=True) as seen:
        failures = run_field(target, spec)
        written = list(seen.writes)
    failures += [f"logged: {record}" for record in errors.records]
    failures += [f"wrote outside the store: {p}" for p in outside(written, target.folder)]
    failures += stored_keys(target)[1]
    variants = 2 if spec.location in {"path", "query"} else 1
    sent = target.per_field[spec.label] + target.unsendable[spec.label]
    assert sent == variants * len(for_field("x")), (spec.label, sent)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
    assert not seen.network, seen.network
    assert not seen.spawns, seen.spawns


# -- the SDK ------------------------------------------------------------------------------------

#: Exceptions an SDK call may raise for a hostile string that is a valid name after all.
VALID_NAME_OUTCOMES: tuple[type[TrackingError], ...] = (
    NotFound,
    Conflict,
    AlreadyExists,
    InvalidInput,
)


@dataclass
class SdkContext:
    target: Target
    run: Any
    file: Path
    dataset: Path
    download_to: Path
    cache: Path


def _sdk_calls(ctx: SdkContext) -> dict[str, Callable[[str], object]]:
    logger, registry, run = ctx.target.store.logger, ctx.target.store.registry, ctx.run

    def start_run(experiment: str, run_name: str | None = None) -> object:
        with logger.start_run(experiment=experiment, run_name=run_name) as started:
            return started.run_id

    return {
        "Run.log_artifact(name)": lambda h: run.log_artifact(ctx.file, name=h),
        "Run.log_param(key)": lambda h: run.log_param(h, 1),
        "Run.log_params(key)": lambda h: run.log_params({h: "v"}),
        "Run.set_tag(key)": lambda h: run.set_tag(h, "v"),
        "Run.log_metric(key)": lambda h: run.log_metric(h, 1.0, step=0),
        "Run.log_dataset(name)": lambda h: run.log_dataset(h, ctx.dataset),
        "ExperimentLogger.start_run(experiment)": lambda h: start_run(h),
        "ExperimentLogger.start_run(run_name)": lambda h: start_run("traversal", h),
        "ExperimentLogger.get_run(run_id)": lambda h: logger.get_run(h),
        "ExperimentLogger.get_experiment(name)": lambda h: logger.get_experiment(h),
        "ExperimentLogger.get_metric_history(key)": lambda h: logger.get_metric_history(
            ctx.target.run_id, h
        ),
        "ExperimentLogger.get_metric_history(run_id)": lambda h: logger.get_metric_history(
            h, ctx.target.metric
        ),
        "ExperimentLogger.search_runs(experiment)": lambda h: logger.search_runs(h),
        "ModelRegistry.register_model(name)": lambda h: registry.register_model(
            h, run_id=ctx.target.run_id, artifact="model"
        ),
        "ModelRegistry.register_model(artifact)": lambda h: registry.register_model(
            "traversal", run_id=ctx.target.run_id, artifact=h
        ),
        "ModelRegistry.register_model(run_id)": lambda h: registry.register_model(
            "traversal", run_id=h, artifact="model"
        ),
        "ModelRegistry.promote(to)": lambda h: registry.promote("churn", 2, to=h),
        "ModelRegistry.rollback(alias)": lambda h: registry.rollback("churn", alias=h),
        "ModelRegistry.get_version_by_alias(alias)": lambda h: registry.get_version_by_alias(
            "churn", h
        ),
        "ModelRegistry.get_model(name)": lambda h: registry.get_model(h),
        "ModelRegistry.list_versions(name)": lambda h: registry.list_versions(h),
        "ModelRegistry.history(name)": lambda h: registry.history(h),
        "ModelRegistry.load_model(name)": lambda h: registry.load_model(h, cache_dir=ctx.cache),
        "ModelRegistry.load_model(alias)": lambda h: registry.load_model(
            "churn", alias=h, cache_dir=ctx.cache
        ),
        "ArtifactStore.download(uri)": lambda h: logger.artifacts.download(
            h, ctx.download_to, "0" * 64
        ),
        "ArtifactStore.exists(uri)": lambda h: logger.artifacts.exists(h),
        "ArtifactStore.delete(uri)": lambda h: logger.artifacts.delete(h),
        "ModelRegistry.download(artifact_uri)": lambda h: registry.download(
            registry.get_version("churn", 1).model_copy(update={"artifact_uri": h}),
            ctx.download_to,
        ),
    }


#: Calls whose argument is a URI: every hostile one, and the crafted ones below, are refused.
URI_CALLS = {"ArtifactStore.download(uri)", "ArtifactStore.exists(uri)",
             "ArtifactStore.delete(uri)", "ModelRegistry.download(artifact_uri)"}  # fmt: skip


def crafted_uris(target: Target) -> list[Hostile]:
    """URIs shaped like the store's own that escape its folder, bucket or prefix."""
    run = target.run_id
    if target.backend == "sqlite":
        root = str(target.store.logger.artifacts.root)  # type: ignore[attr-defined]
        own = f"file://{root}"
        return [
            Hostile("root-parent", f"{own}/../x"),
            Hostile("runs-escape", f"{own}/runs/../../../../etc/passwd"),
            Hostile("name-escape", f"{own}/runs/{run}/model/../../../../../etc/passwd"),
            Hostile("pct-escape", f"{own}/runs/{run}/model/%2e%2e%2f%2e%2e%2fx"),
            Hostile("sibling-root", f"{own}x/runs/{run}/model/model.json"),
            Hostile("too-short", f"{own}/runs/{run}/model"),
            Hostile("too-long", f"{own}/runs/{run}/model/model.json/x"),
            Hostile("not-runs", f"{own}/data/{run}/model/model.json"),
            Hostile("nul", f"{own}/runs/{run}/model/model.json\x00.txt"),
            Hostile("newline", f"{own}/runs/{run}/model/model.json\n"),
            Hostile("relative", f"file://runs/{run}/model/model.json"),
            Hostile("other-scheme", f"s3://{BUCKET}/{PREFIX}/runs/{run}/model/model.json"),
        ]
    own = f"s3://{BUCKET}/{PREFIX}"
    return [
        Hostile("other-bucket", f"s3://other-bucket/{PREFIX}/runs/{run}/model/model.json"),
        Hostile("bucket-prefix", f"s3://{BUCKET}x/{PREFIX}/runs/{run}/model/model.json"),
        Hostile("prefix-escape", f"{own}/../x/runs/{run}/model/model.json"),
        Hostile("sibling-prefix", f"s3://{BUCKET}/{PREFIX}x/runs/{run}/model/model.json"),
        Hostile("other-prefix", f"s3://{BUCKET}/elsewhere/runs/{run}/model/model.json"),
        Hostile("name-escape", f"{own}/runs/{run}/../../../x/model.json"),
        Hostile("pct-escape", f"{own}/runs/%2e%2e/model/model.json"),
        Hostile("too-long", f"{own}/runs/{run}/model/model.json/x"),
        Hostile("query", f"{own}/runs/{run}/model/model.json?versionId=1"),
        Hostile("userinfo", f"s3://{BUCKET}@169.254.169.254/{PREFIX}/runs/a/b/c"),
        Hostile("newline", f"{own}/runs/{run}/model/model.json\n"),
        Hostile("other-scheme", f"file:///tmp/{PREFIX}/runs/{run}/model/model.json"),
    ]


#: Reads that answer "nothing" (an empty list) for a key that cannot exist instead of raising
#: (an unknown metric of an existing run has no points). Read-only: nothing is touched.
EMPTY_READS = {"ExperimentLogger.get_metric_history(key)"}


def _sdk_outcome(call: Callable[[str], object], value: str) -> str:
    try:
        result = call(value)
    except (InvalidInput, NotFound, Conflict, AlreadyExists) as exc:
        return type(exc).__name__
    except Exception as exc:  # anything else is a defect
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    items = getattr(result, "items", result)
    return "empty" if isinstance(items, list) and not items else "ok"


def test_sdk_entry_points(target: Target, tmp_path: Path) -> None:
    """Names, keys and URIs from the corpus: ``InvalidInput`` or ``NotFound``, nothing else."""
    file = tmp_path / "payload.json"
    file.write_text("{}")
    dataset = tmp_path / "train.csv"
    dataset.write_text("a,b\n1,2\n")
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    examples: dict[str, list[str]] = {}
    with _ErrorLog() as errors, watching(writes=True) as seen:
        with target.store.logger.start_run(experiment="traversal", run_name="sdk") as run:
            ctx = SdkContext(target, run, file, dataset, tmp_path / "download" / "model.json",
                             tmp_path)  # fmt: skip
            for label, call in _sdk_calls(ctx).items():
                strings = for_field("ok")
                if label in URI_CALLS:
                    strings += crafted_uris(target)
                for hostile in strings:
                    outcome = _sdk_outcome(call, hostile.value)
                    outcomes[outcome.split(":")[0]] += 1
                    legit = label not in URI_CALLS and _parses(
                        lambda h=hostile: validate_name(h.value)
                    )
                    allowed = {"ok", "empty", *(e.__name__ for e in VALID_NAME_OUTCOMES)} if legit \
                        else {"InvalidInput", "NotFound"}  # fmt: skip
                    if label in EMPTY_READS:
                        allowed.add("empty")
                    if outcome not in allowed:
                        failures.append(f"{label} -> {outcome[:60]}")
                        examples.setdefault(failures[-1], []).append(hostile.id)
        written = list(seen.writes)
    failures += [f"logged: {record}" for record in errors.records]
    failures += [f"wrote outside the store and tmp_path: {p}"
                 for p in outside(written, target.folder, tmp_path)]  # fmt: skip
    failures += stored_keys(target)[1]
    print(f"\n[traversal sdk {target.backend}] calls={sum(outcomes.values())} "
          f"{json.dumps(dict(sorted(outcomes.items())))}")  # fmt: skip
    grouped = [f"{count:4d} x {failure}: {', '.join(examples.get(failure, [])[:6])}"
               for failure, count in Counter(failures).most_common()]  # fmt: skip
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(grouped)
    assert not seen.network, seen.network
    assert not seen.spawns, seen.spawns


def outside(written: list[str], *roots: Path) -> list[str]:
    """The written paths not under ``roots`` nor in one of the SDK's own temporary folders.

    ``register_model`` and ``load_model`` verify an artifact in a ``tempfile`` folder named
    ``tracking-*`` (random, never from the input), in the system's or the given cache folder.
    """
    temp = Path(tempfile.gettempdir()).resolve()
    allowed = [root.resolve() for root in roots]
    found = []
    for path in written:
        resolved = Path(os.path.abspath(path))
        if any(resolved.is_relative_to(root) for root in allowed):
            continue
        if resolved.is_relative_to(temp) and resolved.relative_to(temp).parts[0].startswith(
            "tracking-"
        ):
            continue
        found.append(path)
    return found


def test_like_wildcards_and_prefixes_match_nothing(target: Target) -> None:
    """``_`` and ``%`` are plain characters: a near-miss name is a 404, never someone else's."""
    run, metric = target.run_id, target.metric
    near = [
        "/models/chu_n", "/models/_hurn", "/models/%25", "/models/c%25",
        "/models/ch_rn/versions", "/models/c_urn/history", "/experiments/chu_n/runs",
        "/experiments/%25/runs", f"/runs/{run[:-1]}_", f"/runs/{run[:8]}", "/runs/%25",
        f"/runs/{run}/metrics/{metric[:-1]}_", f"/runs/{run}/metrics/%25",
        f"/runs/{run[:-1]}_/metrics/{metric}",
    ]  # fmt: skip
    for path in near:
        response = target.client.get(path, headers=ADMIN)
        if "/metrics/" in path and response.status_code == 200:
            # An unknown metric of an existing run has no points: an empty page, not a match.
            assert response.json()["items"] == [], (path, response.text)
            continue
        assert response.status_code in {404, 422}, (path, response.status_code, response.text)
    for alias in ("stag_", "%", "product_on"):
        response = target.client.post(
            f"/predict/churn?alias={quote(alias)}", json=SEED_REQUEST, headers=ADMIN
        )
        assert response.status_code in {404, 422}, (alias, response.status_code, response.text)


@pytest.mark.parametrize("call", ["get_run", "get_experiment", "get_model", "history"])
def test_sqlite_lookups_with_a_lone_surrogate_raise_tracking_errors(
    tmp_path: Path, call: str
) -> None:
    store = new_store(tmp_path)
    target = store.registry if call in {"get_model", "history"} else store.logger
    with pytest.raises((InvalidInput, NotFound)):
        getattr(target, call)("a\ud800b")


# -- crafted page tokens: well-formed base64 JSON with hostile values ---------------------------

TOKEN_FIELDS = ("after", "before", "step", "start_time", "run_id", "order", "run", "offset",
                "query", "experiment", "model")  # fmt: skip
TOKEN_VALUES: dict[str, object] = {
    "object": {"x": 1}, "list": [1], "huge-int": 2**70, "negative-huge": -(2**70), "negative": -1,
    "float": 1.5, "big-float": 1e308, "null": None, "bool": True, "long-text": "x" * 3000,
    "dotdot": "../", "s3-uri": "s3://other-bucket/key", "nul": "\x00",
}  # fmt: skip
PAGED = [spec for spec in FIELDS if spec.name == "page_token"]


def test_crafted_page_tokens_are_4xx_or_a_page(target: Target) -> None:
    """A token is base64 JSON: one the server never made, with hostile values, is never a 5xx."""
    from tracking.stores._tokens import encode_token

    statuses: Counter[int] = Counter()
    failures = []
    with _ErrorLog() as errors, watching() as seen:
        for spec in PAGED:
            for label, value in TOKEN_VALUES.items():
                token = encode_token(dict.fromkeys(TOKEN_FIELDS, value))
                sent = _send(target, spec, token, raw=False)
                assert sent is not None
                statuses[sent.response.status_code] += 1
                problems = _check(target, spec, Hostile(label, token), sent, page_ok=True)
                failures += [f"{spec.label} [{label}] {p}" for p in problems]
    print(f"\n[traversal tokens {target.backend}] {json.dumps(dict(sorted(statuses.items())))}")
    failures += [f"logged: {record}" for record in errors.records]
    assert not failures, "\n".join(failures[:40])
    assert not seen.network


# -- what the corpus found, pinned --------------------------------------------------------------


@pytest.mark.parametrize("name", ["model\n", "churn\n", "a\n", "staging\n"])
def test_a_name_with_a_trailing_newline_is_refused(name: str, tmp_path: Path) -> None:
    """Found: ``NAME_PATTERN.match`` let "model\\n" through (``$`` matches before a final newline),
    so it could become an artifact's folder or file name, or an S3 key."""
    with pytest.raises(InvalidInput):
        validate_name(name)
    from tracking.artifacts.local import LocalArtifactStore

    source = tmp_path / "model.json"
    source.write_text("{}")
    store = LocalArtifactStore(tmp_path / "artifacts")
    with pytest.raises(InvalidInput):
        store.upload("run1", name, source)
    with pytest.raises(InvalidInput):
        store.exists(f"file://{store.root}/runs/run1/model/{name}")
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").rglob("*"))


@pytest.mark.parametrize(
    "path",
    [
        "/models?max_results=5%0A", "/models?max_results=%205", "/models?max_results=%2B5",
        "/models?max_results=1_0", "/experiments?max_results=5%0D%0A",
        "/models/churn/versions?max_results=5%20", "/predict/churn?version=1%0A",
        "/predict/churn/batch?version=1%0A", "/predict/churn?alias=staging%0A",
    ],
)  # fmt: skip
def test_integers_and_aliases_with_trailing_whitespace_are_422(target: Target, path: str) -> None:
    """Found: lax parsing read "5\\n", " 5", "+5" and "1_0" as integers, and ``re.match`` let
    a version "1\\n" and an alias "staging\\n" through, all with a 200."""
    body = {"rows": [SEED_REQUEST]} if "batch" in path else SEED_REQUEST
    method = "POST" if path.startswith("/predict") else "GET"
    response = target.client.request(method, path, json=body if method == "POST" else None,
                                      headers=ADMIN)  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_version_in_the_path_is_digits_only(target: Target) -> None:
    for version in ("1%0A", "1%20", "%2B1", "1_0", "0x1"):
        response = target.client.post(
            f"/models/churn/versions/{version}/promote", json={"to": "challenger"}, headers=ADMIN
        )
        assert response.status_code == 422, (version, response.text)


def test_dotdot_in_a_name_is_refused_by_the_schema(target: Target) -> None:
    """The name pattern says "no '..'" (the SDK's rule), so every route refuses it with 422."""
    run = target.run_id
    for path in ("/models/a..b", "/models/a..b/versions", "/models/a..b/history",
                 "/experiments/a..b/runs", "/runs/a..b", f"/runs/a..b/metrics/{target.metric}",
                 f"/runs/{run}/metrics/a..b"):  # fmt: skip
        response = target.client.get(path, headers=ADMIN)
        assert response.status_code == 422, (path, response.text)
        assert "without '..'" in response.json()["error"]["message"]
    for path, body in (
        ("/models/a..b/rollback", {"alias": "challenger"}),
        ("/models/churn/rollback", {"alias": "a..b"}),
        ("/models/churn/versions/1/promote", {"to": "a..b"}),
        ("/models/a..b/versions/1/promote", {"to": "challenger"}),
    ):
        response = target.client.post(path, json=body, headers=ADMIN)
        assert response.status_code == 422, (path, body, response.text)
    assert "a..b" not in target.store.registry.get_model("churn").aliases


def test_error_messages_are_bounded(target: Target) -> None:
    """Found: an unknown order_by field of 10,000 characters came back whole in the message."""
    response = target.client.get(f"/experiments/churn/runs?order_by={'x' * LONG}", headers=ADMIN)
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert len(message) <= MAX_MESSAGE
    assert message.endswith("\u2026")


# -- afterwards ---------------------------------------------------------------------------------


def _check_key(relative: str) -> str | None:
    parts = relative.split("/")
    if parts[0] in OBJECT_NAMESPACES:
        # The prediction log and outcomes: every segment within the name rule, e.g.
        # feedback/churn/2026-12-02/19/<stamp>-<hex>.jsonl.gz (keys built by the server).
        if not _parses(lambda: object_key(relative)):
            return f"{relative!r} is not a valid data object key"
        return None
    if len(parts) != 4 or parts[0] != "runs":
        return f"{relative!r} is not runs/<run_id>/<name>/<file>"
    for part in parts[1:]:
        if not _parses(lambda p=part: validate_name(p)):
            return f"{relative!r} has a segment outside the name rule: {part!r}"
    return None


def stored_keys(target: Target) -> tuple[list[str], list[str]]:
    """Every stored artifact key (every S3 version and delete marker) and what is wrong.

    Wrong: a key not of the form ``[<prefix>/]runs/<run_id>/<name>/<file>`` with three valid
    names, a bucket other than ours, a table without our prefix.
    """
    problems = []
    keys: list[str] = []
    if target.backend == "moto":
        buckets = [b["Name"] for b in target.s3.list_buckets()["Buckets"]]
        if buckets != [BUCKET]:
            problems.append(f"buckets {buckets}")
        tables = target.dynamodb.list_tables()["TableNames"]
        problems += [f"table {t!r}" for t in tables if not t.startswith(TABLE_PREFIX)]
        pages = target.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET)
        for page in pages:
            for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                keys.append(entry["Key"])
        for key in keys:
            if not key.startswith(PREFIX + "/"):
                problems.append(f"key outside the prefix: {key!r}")
            elif problem := _check_key(key[len(PREFIX) + 1 :]):
                problems.append(problem)
    else:
        root: Path = target.store.logger.artifacts.root  # type: ignore[attr-defined]
        for path in root.rglob("*"):
            if path.is_file() or path.is_symlink():
                keys.append(path.relative_to(root).as_posix())
                if problem := _check_key(keys[-1]):
                    problems.append(problem)
    return keys, problems


def test_afterwards_every_key_matches_and_no_hostile_name_exists(
    target: Target, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Last for each backend: the keys again, no file named after a hostile string anywhere
    under the session's temporary folder, and the counts (of this process: run with ``-s``).

    The field and SDK tests check the keys and every path they wrote themselves, so nothing here
    depends on which tests ran before in this process (pytest-xdist spreads them).
    """
    keys, problems = stored_keys(target)
    assert keys, "the trained model's artifacts should be listed"
    hostile_names = {h.value for h in CORPUS if "/" not in h.value
                     and not _parses(lambda v=h.value: validate_name(v))}  # fmt: skip
    for path in tmp_path_factory.getbasetemp().rglob("*"):
        if path.name in hostile_names:
            problems.append(f"a file or folder has a hostile name: {path}")
    total = sum(target.per_field.values())
    print(f"\n[traversal {target.backend}] cases={total} fields={len(target.per_field)} "
          f"keys={len(keys)} server_errors={len(target.server_errors)} "
          f"rerouted_by_the_client={target.rerouted}"
          f"\n  statuses {json.dumps(dict(sorted(target.statuses.items())))}"
          f"\n  unsendable (refused by the client) {sum(target.unsendable.values())}")  # fmt: skip
    for label, count in sorted(target.per_field.items()):
        print(f"  {count:5d}  {label}")
    assert not problems, "\n".join(problems[:40])
    assert not target.server_errors, target.server_errors[:20]
