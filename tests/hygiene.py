"""Error hygiene, checked on every response any test receives.

No response body may hold a traceback, an ARN, an ``s3://`` URI, or the name of a table, bucket,
database file or artifact folder of the app that answered. ``tests/conftest.py`` installs
``check_response`` on Starlette's TestClient transport, on httpx clients (live servers) and the
Lambda handler tests; the schema fuzzing suite runs it as a schemathesis check. Each check is
counted, so the suites can report how many bodies were inspected.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping

from functions.api.redaction import storage_names
from tracking.backends import build_stores
from tracking.config import DEFAULT_ARTIFACT_URI, DEFAULT_TRACKING_URI, TrackingConfig

#: Shapes that never belong in a body: a Python traceback, an AWS ARN, an S3 URI.
FORBIDDEN = (
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r'File "[^"]+", line \d+'),
    re.compile(r"\barn:aws[a-z-]*:"),
    re.compile(r"s3://", re.IGNORECASE),
)


class Unhygienic(AssertionError):
    """A response body gave away something it must not."""


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bodies = 0

    def add(self, count: int = 1) -> None:
        with self._lock:
            self.bodies += count


CHECKED = _Counter()


def names_from_env(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The storage names an app configured from ``environ`` would use."""
    tracking_uri = environ.get("TRACKING_URI", "")
    artifact_uri = environ.get("ARTIFACT_URI", "")
    return names_of(tracking_uri, artifact_uri) if tracking_uri or artifact_uri else ()


def names_of(tracking_uri: str, artifact_uri: str) -> tuple[str, ...]:
    """The storage names of stores at these URIs (building them sends no request)."""
    config = TrackingConfig(TRACKING_URI=tracking_uri or DEFAULT_TRACKING_URI,
                            ARTIFACT_URI=artifact_uri or DEFAULT_ARTIFACT_URI)  # fmt: skip
    return storage_names(*build_stores(config))


def names_from_app(app: object) -> tuple[str, ...]:
    """The storage names of an app built by ``create_app`` (or of what it wraps)."""
    for candidate in (app, getattr(app, "app", None), getattr(app, "target", None)):
        redact = getattr(getattr(candidate, "state", None), "redact", None)
        if redact is not None:
            return tuple(redact.names)
    return names_from_env()


def _without_passage_text(text: str) -> str:
    """The body less the retriever's passage texts: they quote the indexed corpus (this
    project's docs, which show ``s3://`` URIs as examples), not anything of the app's state."""
    if '"passages"' not in text:
        return text
    try:
        body = json.loads(text)
    except ValueError:
        return text
    answers = body.get("predictions", [body]) if isinstance(body, dict) else []
    for answer in answers:
        for passage in answer.get("passages", []) if isinstance(answer, dict) else []:
            if isinstance(passage, dict):
                passage.pop("text", None)
    return json.dumps(body)


def check_body(body: bytes | str, names: Iterable[str] = ()) -> None:
    """Raise ``Unhygienic`` when ``body`` holds a forbidden shape or one of ``names``."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = _without_passage_text(text)
    CHECKED.add()
    for pattern in FORBIDDEN:
        found = pattern.search(text)
        if found:
            raise Unhygienic(f"response body contains {found.group(0)!r}: {text[:300]!r}")
    for name in names:
        if name and name in text:
            raise Unhygienic(f"response body names the storage {name!r}: {text[:300]!r}")
