"""The CloudWatch metrics that template.yaml's dashboard and alarms name, read from the template.

Used by tests/lambda/test_cloudwatch_metrics.py, which holds them against the EMF documents the
handler really prints and against the metrics AWS publishes for our resources.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_template import CloudFormationLoader

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

#: What AWS publishes, from its documentation ("Amazon API Gateway dimensions and metrics",
#: "Types of metrics for Lambda functions", "DynamoDB metrics and dimensions"): the metric names
#: we may chart and the dimension sets CloudWatch keys them by. Not our code's: AWS's.
AWS_PUBLISHED: dict[str, tuple[frozenset[str], tuple[frozenset[str], ...]]] = {
    "AWS/ApiGateway": (
        frozenset({"Count", "4XXError", "5XXError", "Latency", "IntegrationLatency"}),
        (frozenset({"ApiName"}), frozenset({"ApiName", "Stage"}),
         frozenset({"ApiName", "Stage", "Resource", "Method"})),
    ),
    "AWS/Lambda": (
        frozenset({"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions",
                   "ProvisionedConcurrencySpilloverInvocations",
                   "ProvisionedConcurrencyUtilization", "ProvisionedConcurrentExecutions"}),
        (frozenset({"FunctionName"}), frozenset({"FunctionName", "Resource"}),
         frozenset({"FunctionName", "Resource", "ExecutedVersion"})),
    ),
    "AWS/DynamoDB": (
        frozenset({"ReadThrottleEvents", "WriteThrottleEvents", "ThrottledRequests"}),
        (frozenset({"TableName"}), frozenset({"TableName", "GlobalSecondaryIndexName"}),
         frozenset({"TableName", "Operation"})),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class MetricRef:
    """One metric a dashboard widget or an alarm names. Dimension values are written as
    CloudFormation substitutions (``${ApiFunction}``); ``None`` where a SEARCH leaves them open."""

    where: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str | None], ...]

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)


def load_template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)
    return loaded


def as_sub(value: Any) -> str:
    """A dimension value in ``Fn::Sub`` spelling: ``{"Ref": "X"}`` -> ``${X}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return str(value["Fn::Sub"])
    raise AssertionError(f"unexpected dimension value {value!r}")


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard JSON, with numeric parameters (written unquoted) at their defaults."""
    resources = template["Resources"].values()
    (dashboard,) = [body for body in resources if body["Type"] == "AWS::CloudWatch::Dashboard"]
    text: str = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    for name, parameter in template["Parameters"].items():
        if parameter["Type"] == "Number":
            text = re.sub(r"(?<!\")\$\{" + name + r"\}(?!\")", str(parameter["Default"]), text)
    body: dict[str, Any] = json.loads(text)
    return body


_SEARCH = re.compile(r"SEARCH\(\s*'\{([^}]*)\}([^']*)'")
_TERM = re.compile(r"(\w+)\s*=\s*\"([^\"]*)\"")


def search_refs(where: str, expression: str) -> list[MetricRef]:
    """The metrics a ``SEARCH('{Namespace,dim,...} MetricName="X" dim="v"', ...)`` can match:
    exactly that dimension schema, the named metric, the values it pins."""
    refs = []
    for schema, terms in _SEARCH.findall(expression):
        namespace, *names = [part.strip() for part in schema.split(",")]
        pinned = dict(_TERM.findall(terms))
        metric = pinned.pop("MetricName", None)
        assert metric, f"{where}: a SEARCH without MetricName matches any metric: {expression}"
        assert set(pinned) <= set(names), (where, pinned, names)
        dimensions = tuple((name, pinned.get(name)) for name in names)
        refs.append(MetricRef(where, namespace, metric, dimensions))
    return refs


def dashboard_refs(body: dict[str, Any]) -> list[MetricRef]:
    refs: list[MetricRef] = []
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        where = f"dashboard widget {widget['properties']['title']!r}"
        previous: list[str] = []
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):  # [{"expression": ...}]
                expression = row[0]["expression"]
                found = search_refs(where, expression)
                assert found or "SEARCH" not in expression, (where, expression)
                refs.extend(found)
                continue
            items = row[:-1] if isinstance(row[-1], dict) else row
            # "." repeats the item at the same place in the row above (CloudWatch's shorthand).
            items = [previous[i] if item == "." else item for i, item in enumerate(items)]
            previous = items
            namespace, name, *flat = items
            assert len(flat) % 2 == 0, (where, row)
            dimensions = tuple(zip(flat[::2], flat[1::2], strict=True))
            refs.append(MetricRef(where, namespace, name, dimensions))
    return refs


def _stat_ref(where: str, metric: dict[str, Any]) -> MetricRef:
    dimensions = tuple((d["Name"], as_sub(d["Value"])) for d in metric.get("Dimensions", ()))
    return MetricRef(where, metric["Namespace"], metric["MetricName"], dimensions)


_INSIGHTS = re.compile(
    r'^SELECT\s+\w+\((\w+)\)\s+FROM\s+SCHEMA\("([^"]+)",\s*([^)]*)\)'
    r"(?:\s+WHERE\s+(.*))?$"
)
_WHERE = re.compile(r"(\w+)\s*=\s*'([^']*)'")


def insights_refs(where: str, expression: str) -> list[MetricRef]:
    """The metric a Metrics Insights ``SELECT f(Metric) FROM SCHEMA("Ns", dims) WHERE d = 'v'``
    alarm reads: exactly that dimension schema, with the values its WHERE pins."""
    found = _INSIGHTS.match(expression.strip())
    assert found, f"{where}: not a Metrics Insights query this check reads: {expression}"
    metric, namespace, names_text, condition = found.groups()
    names = [name.strip() for name in names_text.split(",") if name.strip()]
    pinned = dict(_WHERE.findall(condition or ""))
    assert set(pinned) <= set(names), (where, pinned, names)
    return [MetricRef(where, namespace, metric, tuple((n, pinned.get(n)) for n in names))]


def alarm_refs(template: dict[str, Any]) -> list[MetricRef]:
    refs = []
    for logical_id, body in template["Resources"].items():
        if body["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = body["Properties"]
        where = f"alarm {logical_id}"
        if "MetricName" in properties:
            refs.append(_stat_ref(where, properties))
        for query in properties.get("Metrics", ()):
            if "MetricStat" in query:
                refs.append(_stat_ref(where, query["MetricStat"]["Metric"]))
            elif str(query.get("Expression", "")).lstrip().upper().startswith("SELECT"):
                refs.extend(insights_refs(where, query["Expression"]))
    return refs
