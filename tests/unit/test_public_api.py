"""The SDK's public surface and its import weight."""

from __future__ import annotations

import subprocess
import sys

import tracking


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert sorted(tracking.__all__) == [
        "AliasChange",
        "AlreadyExists",
        "Artifact",
        "Conflict",
        "Dataset",
        "Experiment",
        "ExperimentLogger",
        "FeatureSpec",
        "Flavor",
        "IntegrityError",
        "InvalidInput",
        "Metric",
        "ModelRegistry",
        "ModelVersion",
        "NotFound",
        "Page",
        "Param",
        "RegisteredModel",
        "Run",
        "RunStatus",
        "Stage",
        "StoreUnavailable",
        "TrackingConfig",
        "TrackingError",
    ]
    for name in tracking.__all__:
        assert getattr(tracking, name) is not None


def test_error_tree() -> None:
    for error in (
        tracking.NotFound,
        tracking.AlreadyExists,
        tracking.Conflict,
        tracking.InvalidInput,
        tracking.IntegrityError,
        tracking.StoreUnavailable,
    ):
        assert issubclass(error, tracking.TrackingError)
    codes = {e.code for e in tracking.TrackingError.__subclasses__()}
    assert len(codes) == len(tracking.TrackingError.__subclasses__())


def test_import_tracking_stays_light() -> None:
    """`import tracking` must not pull in boto3, pynamodb, xgboost or any web framework."""
    code = (
        "import sys, tracking; "
        "heavy = [m for m in ('boto3', 'botocore', 'pynamodb', 'xgboost', 'fastapi', 'starlette', "
        "'mangum', 'aws_lambda_powertools', 'typer') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_sdk_never_imports_web_or_lambda_frameworks() -> None:
    from pathlib import Path

    root = Path(tracking.__file__).parent
    for source in root.rglob("*.py"):
        text = source.read_text()
        for forbidden in ("fastapi", "starlette", "mangum", "aws_lambda_powertools", "functions."):
            assert f"import {forbidden}" not in text, source
            assert f"from {forbidden}" not in text, source
        # pynamodb belongs to the DynamoDB adapter; its table declaration and package stay light.
        in_adapter = source.parent.name == "dynamodb" and source.name not in {
            "__init__.py",
            "schema.py",
        }
        if not in_adapter:
            assert "import pynamodb" not in text, source
            assert "from pynamodb" not in text, source
