"""deploy/ecs-task-definition.json: a real Fargate task definition for the same image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.api.settings import ApiSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def task() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "deploy" / "ecs-task-definition.json").read_text())
    return loaded


def test_task_is_fargate_with_roles(task: dict[str, Any]) -> None:
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert task["executionRoleArn"].startswith("arn:aws:iam::")
    assert task["taskRoleArn"].startswith("arn:aws:iam::")
    assert int(task["memory"]) >= 512


def test_container_runs_the_image_command_with_a_health_check(task: dict[str, Any]) -> None:
    (container,) = task["containerDefinitions"]
    # One uvicorn worker per task (serve.py): scale with tasks, see DESIGN.md on TCP_NODELAY.
    assert container["command"] == ["python", "-m", "functions.api.serve"]
    assert container["portMappings"][0]["containerPort"] == 8000
    check = container["healthCheck"]
    assert check["command"][0] == "CMD"
    assert "/health" in " ".join(check["command"])
    assert "curl" not in " ".join(check["command"])  # the slim image has none
    assert check["startPeriod"] >= 30  # the model is downloaded and warmed up at start


def test_environment_and_secrets(task: dict[str, Any]) -> None:
    (container,) = task["containerDefinitions"]
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["POWERTOOLS_TRACE_DISABLED"] == "true"  # no X-Ray daemon off Lambda
    assert environment["TRACKING_URI"].startswith("dynamodb://")
    assert environment["ARTIFACT_URI"].startswith("s3://")
    secrets = {item["name"]: item["valueFrom"] for item in container["secrets"]}
    assert secrets["API_KEYS"].startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:"))
    assert "API_KEYS" not in environment  # never in plain text
    aliases = {str(field.validation_alias) for field in ApiSettings.model_fields.values()}
    server = {"PORT", "HOST", "AWS_REGION"}
    unknown = set(environment) - aliases - server
    assert all(name.startswith("POWERTOOLS_") for name in unknown), unknown
    assert container["logConfiguration"]["logDriver"] == "awslogs"
