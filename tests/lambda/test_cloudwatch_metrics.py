"""Every metric template.yaml's dashboard and alarms name is one that exists.

Ours (namespace MLOps) are taken from what the handler really prints as EMF when it serves a
prediction, so a renamed metric or a changed dimension set fails here, not on an empty chart.
AWS's are held to the metrics AWS documents for these services, with dimension values that are
this stack's own resources.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.cloudwatch import (
    AWS_PUBLISHED,
    MetricRef,
    alarm_refs,
    as_sub,
    dashboard_body,
    dashboard_refs,
    load_template,
)
from tracking.stores.dynamodb.schema import table_definitions

from .support import LambdaContext, invoke, load_event

Emitted = dict[tuple[str, str, frozenset[str]], dict[str, set[str]]]


def _emitted(stdout: str) -> Emitted:
    """(namespace, metric, dimension names) -> the values seen per dimension, from EMF lines."""
    found: Emitted = {}
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    key = (directive["Namespace"], metric["Name"], frozenset(dimension_set))
                    values = found.setdefault(key, {})
                    for name in dimension_set:
                        values.setdefault(name, set()).add(str(document[name]))
    return found


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def emitted(handler: Any, context: LambdaContext, capsys: pytest.CaptureFixture[str]) -> Emitted:
    """The EMF metrics of a cold invocation that serves one prediction."""
    capsys.readouterr()
    assert invoke(handler, load_event("rest_v1_predict_churn"), context).status == 200
    # The two metrics a quiet invocation does not send, printed by the functions that send
    # them (the predict route while a traffic policy splits; the prediction log on drops).
    from functions.api.observability import (
        publish_prediction_log_dropped,
        publish_predictions_by_variant,
    )

    publish_predictions_by_variant("churn", {"challenger": 1})
    publish_prediction_log_dropped({("churn", "buffer_full"): 1})
    found = _emitted(capsys.readouterr().out)
    assert found, "the handler printed no EMF document"
    return found


def _aws_dimension_values(template: dict[str, Any]) -> dict[str, set[str]]:
    """The values a dimension of an AWS metric may take: this stack's resources."""
    resources = template["Resources"]
    alias = resources["ApiFunction"]["Properties"]["AutoPublishAlias"]
    indexes = {
        index["IndexName"]
        for definition in table_definitions("x")
        for index in definition.get("GlobalSecondaryIndexes", ())
    }
    return {
        "ApiName": {as_sub(resources["Api"]["Properties"]["Name"])},
        "Stage": {"${Stage}"},
        "FunctionName": {"${ApiFunction}"},
        "Resource": {f"${{ApiFunction}}:{alias}"},
        "TableName": {"${TrackingTable}", "${MetricsTable}"},
        "GlobalSecondaryIndexName": indexes,
    }


def unknown_refs(refs: list[MetricRef], emitted: Emitted, template: dict[str, Any]) -> list[str]:
    """What is wrong with each ref that names no existing metric (empty: all exist)."""
    variables = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    namespace = variables["POWERTOOLS_METRICS_NAMESPACE"]
    ours = {
        "service": {variables["POWERTOOLS_SERVICE_NAME"]},
        "function_name": {"${ApiFunction}"},
    }
    aws_values = _aws_dimension_values(template)
    problems = []
    for ref in refs:
        if ref.namespace == namespace:
            seen = emitted.get((namespace, ref.name, ref.dimension_names))
            if seen is None:
                problems.append(f"{ref.where}: the code emits no {ref.name} with dimensions "
                                f"{sorted(ref.dimension_names)}")  # fmt: skip
                continue
            allowed = {name: ours.get(name, values) for name, values in seen.items()}
        elif ref.namespace in AWS_PUBLISHED:
            names, dimension_sets = AWS_PUBLISHED[ref.namespace]
            if ref.name not in names or ref.dimension_names not in dimension_sets:
                problems.append(f"{ref.where}: {ref.namespace} has no {ref.name} by "
                                f"{sorted(ref.dimension_names)}")  # fmt: skip
                continue
            allowed = aws_values
        else:
            problems.append(f"{ref.where}: unknown namespace {ref.namespace}")
            continue
        for name, value in ref.dimensions:
            if value is not None and value not in allowed.get(name, set()):
                problems.append(f"{ref.where}: {name}={value!r} is none of ours "
                                f"{sorted(allowed.get(name, set()))}")  # fmt: skip
    return problems


def test_dashboard_and_alarms_name_only_metrics_that_exist(
    emitted: Emitted, template: dict[str, Any]
) -> None:
    refs = dashboard_refs(dashboard_body(template)) + alarm_refs(template)
    assert len({ref.where for ref in refs}) >= 10  # every widget and alarm was read

    assert unknown_refs(refs, emitted, template) == []

    # Our own metrics are really charted: the cold starts and the predictions by risk level.
    charted = {(r.name, r.dimension_names) for r in refs if r.namespace == "MLOps"}
    assert ("ColdStart", frozenset({"function_name", "service"})) in charted
    assert ("Predictions", frozenset({"model", "risk_level", "service"})) in charted
    assert ("VariantPredictions", frozenset({"model", "service", "variant"})) in charted
    assert ("PredictionLogDropped", frozenset({"model", "reason", "service"})) in charted


def test_the_check_rejects_metrics_nobody_emits(emitted: Emitted, template: dict[str, Any]) -> None:
    wrong = [
        # Predictions without the service dimension: CloudWatch would find no such series.
        MetricRef("w1", "MLOps", "Predictions", (("model", None), ("risk_level", None))),
        MetricRef("w2", "MLOps", "PredictionLogDrops", (("service", "ml-api"),)),
        MetricRef("w3", "AWS/Lambda", "Errors", (("FunctionName", "${OtherFunction}"),)),
        MetricRef("w4", "AWS/ApiGateway", "Latency", (("Stage", "${Stage}"),)),
        MetricRef("w5", "MLOps", "ColdStart",
                  (("function_name", "${ApiFunction}"), ("service", "other"))),
    ]  # fmt: skip

    problems = unknown_refs(wrong, emitted, template)

    assert [problem.split(":")[0] for problem in problems] == ["w1", "w2", "w3", "w4", "w5"]


def test_every_alarm_notifies_the_topic_and_is_on_the_dashboard(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    alarms = {k for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms == {
        "Api5xxRateAlarm", "ApiP99LatencyAlarm", "LambdaErrorsAlarm", "LambdaThrottlesAlarm",
        "DynamoDBThrottlesAlarm", "PredictionLogDropsAlarm",
    }  # fmt: skip
    for name in alarms:
        properties = resources[name]["Properties"]
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert properties["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert properties["TreatMissingData"] == "notBreaching", name
        assert "docs/operations.md#" in properties["AlarmDescription"], name
    (widget,) = [w for w in dashboard_body(template)["widgets"] if w["type"] == "alarm"]
    assert set(widget["properties"]["alarms"]) == {f"${{{name}.Arn}}" for name in alarms}
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""


def test_alarm_descriptions_point_at_sections_that_exist(template: dict[str, Any]) -> None:
    from tests.deploy.cloudwatch import ROOT

    text = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        "-".join(line.lstrip("#").strip().lower().replace("/", " ").split())
        for line in text.splitlines()
        if line.startswith("### ")
    }
    for name, body in template["Resources"].items():
        if body["Type"] == "AWS::CloudWatch::Alarm":
            anchor = body["Properties"]["AlarmDescription"].split("#")[1].rstrip(".")
            assert anchor in anchors, (name, anchor, sorted(anchors))


def test_predictions_are_published_per_risk_level(
    lambda_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.api.observability import publish_predictions_by_risk

    capsys.readouterr()
    publish_predictions_by_risk("churn", {"low": 3, "high": 1})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert [(d["model"], d["risk_level"], d["Predictions"]) for d in lines] == [
        ("churn", "low", [3.0]),
        ("churn", "high", [1.0]),
    ]
    for document in lines:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "MLOps"
        assert directive["Dimensions"] == [["service", "model", "risk_level"]]
