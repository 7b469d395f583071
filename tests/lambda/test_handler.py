"""``functions.api.main.handler`` driven by canned API Gateway events (REST v1 and HTTP v2)."""

from __future__ import annotations

import base64
import json
import warnings
from typing import Any
from urllib.parse import urlencode

import pytest

from .support import (
    LambdaContext,
    invoke,
    load_event,
    set_body,
    set_header,
)

PREDICT_EVENTS = ["rest_v1_predict_churn", "http_v2_predict_churn", "http_v2_predict_churn_base64"]
HEALTH_EVENTS = ["rest_v1_health", "http_v2_health"]
ALL_EVENTS = [*PREDICT_EVENTS, *HEALTH_EVENTS, "rest_v1_experiment_runs"]
SEED = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}
# Powertools warns when an invocation added no application metric (only /predict adds one).


def _request_body(event: dict[str, Any]) -> Any:
    raw = event["body"]
    return json.loads(base64.b64decode(raw) if event["isBase64Encoded"] else raw)


def _emf_documents(text: str) -> list[dict[str, Any]]:
    documents = []
    for line in text.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents


def _metric_names(document: dict[str, Any]) -> set[str]:
    return {
        metric["Name"]
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }


def test_events_are_well_formed() -> None:
    for name in PREDICT_EVENTS:
        assert _request_body(load_event(name)) == SEED, name
    for name in ("rest_v1_predict_churn", "rest_v1_health", "rest_v1_experiment_runs"):
        event = load_event(name)
        assert "version" not in event  # REST APIs send payload 1.0 without a version field
        assert {"resource", "path", "httpMethod", "multiValueHeaders"} <= set(event)
        assert event["requestContext"]["stage"] == "Prod"
    for name in ("http_v2_predict_churn", "http_v2_health", "http_v2_predict_churn_base64"):
        event = load_event(name)
        assert event["version"] == "2.0"
        assert (
            event["routeKey"] == f"{event['requestContext']['http']['method']} {event['rawPath']}"
        )
    assert load_event("http_v2_predict_churn_base64")["isBase64Encoded"] is True


@pytest.mark.parametrize("name", PREDICT_EVENTS)
def test_predict_event_scores_the_seed_request(
    handler: Any, context: LambdaContext, name: str
) -> None:
    event = load_event(name)

    response = invoke(handler, event, context)

    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/json"
    body = response.body
    assert set(body) == {"player_id", "churn_probability", "risk_level", "model_version"}
    assert body["player_id"] == "p_123"
    assert 0.0 <= body["churn_probability"] <= 1.0
    assert body["risk_level"] in {"low", "medium", "high"}
    assert body["model_version"] == "v1"


@pytest.mark.parametrize("name", HEALTH_EVENTS)
def test_health_event(handler: Any, context: LambdaContext, name: str) -> None:
    response = invoke(handler, load_event(name), context)

    assert response.status == 200, response.body
    assert response.body["status"] == "ok"
    assert response.body["degraded"] is False
    assert [(m["model"], m["version"]) for m in response.body["models"]] == [
        ("churn", "v1"),
        ("rag", "v1"),
    ]


def test_both_payload_formats_give_the_same_prediction(
    handler: Any, context: LambdaContext
) -> None:
    rest = invoke(handler, load_event("rest_v1_predict_churn"), context)
    http = invoke(handler, load_event("http_v2_predict_churn"), context)
    encoded = invoke(handler, load_event("http_v2_predict_churn_base64"), context)

    assert rest.body == http.body == encoded.body
    # Mangum answered each in its own format: multiValueHeaders for REST, cookies for HTTP APIs.
    assert "multiValueHeaders" in rest.raw
    assert "multiValueHeaders" not in http.raw


def test_query_string_reaches_the_route_v1(handler: Any, context: LambdaContext) -> None:
    event = load_event("rest_v1_experiment_runs")

    response = invoke(handler, event, context)

    assert response.status == 200, response.body
    runs = response.body["items"]
    assert len(runs) == 1
    assert runs[0]["experiment_name"] == "churn"
    assert runs[0]["params"]["max_depth"] == "5"

    # A filter nothing matches proves the filter is applied, not ignored.
    for key in ("queryStringParameters", "multiValueQueryStringParameters"):
        event[key]["filter"] = "metrics.test_auc > 2"
    event["multiValueQueryStringParameters"]["filter"] = ["metrics.test_auc > 2"]
    assert invoke(handler, event, context).body["items"] == []


def test_query_string_reaches_the_route_v2(handler: Any, context: LambdaContext) -> None:
    event = load_event("http_v2_health")
    path = "/experiments/churn/runs"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"GET {path}"

    def runs(filter_: str) -> list[Any]:
        event["rawQueryString"] = urlencode(
            [("filter", filter_), ("order_by", "metrics.test_auc DESC"), ("max_results", "5")]
        )
        response = invoke(handler, event, context)
        assert response.status == 200, response.body
        items: list[Any] = response.body["items"]
        return items

    assert len(runs("metrics.test_auc > 0.5 and params.max_depth = '5'")) == 1
    assert runs("metrics.test_auc > 2") == []


@pytest.mark.parametrize("name", ["rest_v1_predict_churn", "http_v2_predict_churn"])
@pytest.mark.parametrize("key", [None, "wrong-key", ""])
def test_missing_or_wrong_key_is_401(
    handler: Any, context: LambdaContext, name: str, key: str | None
) -> None:
    event = set_header(load_event(name), "X-API-Key", key)

    response = invoke(handler, event, context)

    assert response.status == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == "ApiKey"
    error = response.body["error"]
    assert error["code"] == "unauthorized"
    assert error["request_id"] == event["requestContext"]["requestId"]


@pytest.mark.parametrize("name", ALL_EVENTS)
def test_response_carries_the_api_gateway_request_id(
    handler: Any, context: LambdaContext, name: str
) -> None:
    event = load_event(name)
    # A client-sent X-Request-ID must not override the id API Gateway assigned.
    set_header(event, "X-Request-ID", "client-chosen-id")

    response = invoke(handler, event, context)

    assert response.status == 200, response.body
    assert response.headers["x-request-id"] == event["requestContext"]["requestId"]


@pytest.mark.parametrize("name", ["rest_v1_predict_churn", "http_v2_predict_churn"])
def test_nan_in_the_body_is_422(handler: Any, context: LambdaContext, name: str) -> None:
    raw = '{"player_id": "p_123", "sessions_7d": 4, "playtime_7d": NaN, "iap_count": 1}'
    event = set_body(load_event(name), raw)

    response = invoke(handler, event, context)

    assert response.status == 422, response.body
    assert response.headers["content-type"] == "application/json"
    error = response.body["error"]
    assert error["code"] == "invalid_input"
    assert "playtime_7d" in error["message"]
    assert error["request_id"] == event["requestContext"]["requestId"]


@pytest.mark.parametrize("name", ["rest_v1_predict_churn", "http_v2_predict_churn"])
@pytest.mark.parametrize("content_length", [True, False], ids=["with-length", "without-length"])
def test_body_over_one_megabyte_is_413(
    handler: Any, context: LambdaContext, name: str, content_length: bool
) -> None:
    event = load_event(name)
    if not content_length:  # the limit must hold on the bytes, not only on the header
        set_header(event, "Content-Length", None)
    set_body(event, json.dumps({**SEED, "padding": "x" * 1_000_001}))

    response = invoke(handler, event, context)

    assert response.status == 413, response.body
    assert response.headers["content-type"] == "application/json"
    assert response.body["error"]["code"] == "payload_too_large"
    assert response.body["error"]["request_id"] == event["requestContext"]["requestId"]


def test_emf_metrics_with_cold_start_are_printed(
    handler: Any, context: LambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()

    assert invoke(handler, load_event("rest_v1_predict_churn"), context).status == 200
    first = _emf_documents(capsys.readouterr().out)
    assert invoke(handler, load_event("http_v2_predict_churn"), context).status == 200
    second = _emf_documents(capsys.readouterr().out)

    cold = [doc for doc in first if "ColdStart" in _metric_names(doc)]
    assert len(cold) == 1
    assert cold[0]["ColdStart"] in (1.0, [1.0])
    assert cold[0]["function_name"] == context.function_name
    assert cold[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MLOps"
    predictions = [doc for doc in first if "Predictions" in _metric_names(doc)]
    # The invocation's total, and the same prediction counted by model and risk level.
    total = [doc for doc in predictions if "risk_level" not in doc]
    by_risk = [doc for doc in predictions if "risk_level" in doc]
    assert len(total) == len(by_risk) == 1
    assert total[0]["Predictions"] in (1.0, [1.0])
    assert by_risk[0]["Predictions"] in (1.0, [1.0])
    assert by_risk[0]["model"] == "churn"
    assert by_risk[0]["risk_level"] in ("low", "medium", "high")
    # Warm invocations publish the application metrics but no second cold start.
    assert not [doc for doc in second if "ColdStart" in _metric_names(doc)]
    assert [doc for doc in second if "Predictions" in _metric_names(doc)]


def test_invocation_without_predictions_emits_no_warning(
    handler: Any, context: LambdaContext
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert invoke(handler, load_event("rest_v1_health"), context).status == 200

    assert [str(warning.message) for warning in caught] == []


def test_request_logs_never_contain_the_body(
    handler: Any,
    context: LambdaContext,
    log_lines: list[str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    canary = {"player_id": "p_canary_7c1e", "sessions_7d": 4, "playtime_7d": 4321.987,
              "iap_count": 1}  # fmt: skip
    good = set_body(load_event("rest_v1_predict_churn"), json.dumps(canary))
    nan = set_body(load_event("http_v2_predict_churn"),
                   json.dumps(canary).replace("4321.987", "NaN") + " ")  # fmt: skip
    bad = set_body(load_event("http_v2_predict_churn"),
                   json.dumps({**canary, "playtime_7d": -4321.987}))  # fmt: skip

    assert invoke(handler, good, context).status == 200
    assert invoke(handler, nan, context).status == 422
    assert invoke(handler, bad, context).status == 422

    records = [json.loads(line) for line in log_lines]
    requests = [record for record in records if record.get("message") == "request"]
    assert [record["status"] for record in requests] == [200, 422, 422]
    assert requests[0]["request_id"] == good["requestContext"]["requestId"]
    # Powertools' correlation id is the API Gateway request id too, with the Lambda context.
    assert requests[0]["correlation_id"] == good["requestContext"]["requestId"]
    assert requests[0]["function_request_id"] == context.aws_request_id
    assert requests[0]["route"] == "/predict/churn"
    captured = capsys.readouterr()
    everything = "\n".join([*log_lines, captured.out, captured.err, caplog.text])
    for secret in ("p_canary_7c1e", "4321.987"):
        assert secret not in everything


def _retarget(event: dict[str, Any], path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The churn event, sent to another path with another body (both payload formats)."""
    if "rawPath" in event:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["routeKey"] = f"POST {path}"
    else:
        event["path"] = event["requestContext"]["path"] = path
    event["isBase64Encoded"] = False
    return set_body(event, json.dumps(body))


@pytest.mark.parametrize("name", ["rest_v1_predict_churn", "http_v2_predict_churn"])
def test_every_served_model_answers_through_the_handler(
    handler: Any, context: LambdaContext, name: str
) -> None:
    rag = invoke(handler, _retarget(load_event(name), "/predict/rag", {"query": "rollback"}),
                 context)  # fmt: skip
    assert rag.status == 200, rag.body
    assert rag.body["model_version"] == "v1"
    assert rag.body["passages"]
    assert {"id", "score", "text", "source"} <= set(rag.body["passages"][0])
    bad = invoke(handler, _retarget(load_event(name), "/predict/rag", {"k": 2}), context)
    assert bad.status == 422
    assert "query" in bad.body["error"]["message"]
    unknown = invoke(handler, _retarget(load_event(name), "/predict/nope", SEED), context)
    assert unknown.status == 404
    assert unknown.body["error"]["code"] == "not_found"
