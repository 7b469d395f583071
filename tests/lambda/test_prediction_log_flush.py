"""On Lambda the environment freezes after each response: the handler flushes the log first."""

from __future__ import annotations

from typing import Any

from .support import LambdaContext, invoke, load_event


def test_the_handler_writes_the_log_before_returning(handler: Any, context: LambdaContext) -> None:
    from functions.api import main

    app = main.app
    recorder = app.state.prediction_log
    # A writer that would otherwise wait an hour: only the handler's flush can write this.
    recorder.flush_seconds = 3600.0
    recorder.start()
    recorder.record([{"request_id": "lambda-1", "row": 0, "model": "lambda-flush",
                      "variant": "production", "version": "v1", "score": 0.4}])  # fmt: skip
    artifacts = app.state.registry.artifacts
    assert artifacts.list_objects("predictions/lambda-flush") == []

    response = invoke(handler, load_event("rest_v1_health"), context)

    assert response.status == 200
    (key,) = artifacts.list_objects("predictions/lambda-flush")
    assert key.endswith(".jsonl.gz")
    assert recorder.publish_emf is True  # drops are published as EMF on Lambda
