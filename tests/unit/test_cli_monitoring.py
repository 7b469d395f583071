"""``tracking ab`` and ``tracking drift`` read the prediction log from the stores (no API)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.models_fixtures import save_model_files
from tracking import ExperimentLogger, ModelRegistry
from tracking.cli import app
from tracking.monitoring.drift import build_profile
from tracking.monitoring.feedback import Outcome, write_outcomes
from tracking.monitoring.prediction_log import encode, hour_folder, object_name

runner = CliRunner()


@pytest.fixture
def logged(tmp_path: Path) -> ModelRegistry:
    """Model ``churn`` v1 with a training profile, and 600 logged predictions with labels."""
    files = save_model_files(tmp_path / "files")
    rng = np.random.default_rng(0)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(build_profile(
        {"sessions_7d": rng.normal(10, 2, 5000)}, scores=rng.random(5000)
    )))  # fmt: skip
    logger = ExperimentLogger()
    run = logger.log_experiment("churn", artifacts={"model": files["json"], "profile": profile})
    registry = ModelRegistry(actor="cli-test")
    registry.register_model("churn", run.run_id, "model", tags={"profile_artifact": "profile"})
    now = datetime.now(UTC)
    at = int(time.time() * 1000)
    records, outcomes = [], []
    for variant, shift in (("production", 0.0), ("challenger", 8.0)):
        labels = rng.integers(0, 2, 300)
        scores = rng.random(300) if variant == "production" else 0.2 + 0.6 * labels
        for i in range(300):
            records.append({
                "request_id": f"{variant}-{i}", "row": 0, "time": at, "model": "churn",
                "variant": variant, "version": "v1", "score": float(scores[i]),
                "risk_level": "low", "sticky": None,
                "features": {"sessions_7d": float(rng.normal(10 + shift, 2))},
            })  # fmt: skip
            outcomes.append(Outcome(request_id=f"{variant}-{i}", label=float(labels[i])))
    registry.artifacts.put_object(
        f"{hour_folder('predictions', 'churn', now)}/{object_name(now)}", encode(records)
    )
    write_outcomes(registry.artifacts, "churn", outcomes, now)
    return registry


def test_ab_prints_variants_and_differences(logged: ModelRegistry) -> None:
    result = runner.invoke(app, ["ab", "churn", "--since", "1h"])
    assert result.exit_code == 0, result.output
    assert "production (baseline)" in result.output
    assert "Difference from production" in result.output
    report = json.loads(runner.invoke(app, ["ab", "churn", "--json"]).output)
    variants = {v["variant"]: v for v in report["variants"]}
    assert variants["challenger"]["metrics"]["auc"]["value"] == 1.0
    assert variants["production"]["requests"] == 300
    assert report["differences"][0]["metrics"]["auc"]["low"] > 0.3


def test_drift_flags_the_shifted_variant(logged: ModelRegistry) -> None:
    result = runner.invoke(app, ["drift", "churn"])
    assert result.exit_code == 0, result.output
    assert "DRIFT" in result.output
    report = json.loads(runner.invoke(app, ["drift", "churn", "--json"]).output)
    variants = {v["variant"]: v for v in report["variants"]}
    assert variants["challenger"]["features"]["sessions_7d"]["drift"] is True
    assert variants["production"]["features"]["sessions_7d"]["psi"] < 0.1
    assert variants["production"]["drifted"] == []


def test_bad_since_and_unknown_model_are_one_line_errors(logged: ModelRegistry) -> None:
    for args, code in ((["ab", "churn", "--since", "2y"], "invalid_input"),
                       (["drift", "nope"], "not_found")):  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert f"error ({code})" in result.output
        assert "Traceback" not in result.output
