"""The ``tracking`` command, through typer's runner and through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.models_fixtures import save_model_files
from tracking import ExperimentLogger, ModelRegistry
from tracking.cli import app

runner = CliRunner()


@pytest.fixture
def seeded(tmp_path: Path) -> str:
    """An embedded store (in the test's own folder) with one experiment and model ``churn``."""
    files = save_model_files(tmp_path / "files")
    logger = ExperimentLogger()
    run = logger.log_experiment(
        "churn", params={"max_depth": 5}, metrics={"auc": 0.87}, artifacts={"model": files["json"]}
    )
    logger.log_experiment("churn", params={"max_depth": 6}, metrics={"auc": 0.75})
    registry = ModelRegistry(actor="cli-test")
    registry.register_model("churn", run.run_id, "model")
    registry.register_model("churn", run.run_id, "model")
    return run.run_id


def test_init_is_idempotent() -> None:
    for _ in range(2):
        result = runner.invoke(app, ["init"])
        assert result.exit_code == 0, result.output
        assert "metadata store ready: sqlite:///.tracking/tracking.db" in result.output
    assert Path(".tracking/tracking.db").is_file()
    assert Path(".tracking/artifacts").is_dir()


def test_experiments_and_runs(seeded: str) -> None:
    result = runner.invoke(app, ["experiments", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert [e["name"] for e in json.loads(result.output)] == ["churn"]

    result = runner.invoke(
        app, ["runs", "list", "churn", "--filter", "metrics.auc > 0.8", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [r["run_id"] for r in json.loads(result.output)] == [seeded]

    result = runner.invoke(app, ["runs", "list", "churn", "--order-by", "metrics.auc ASC"])
    assert result.exit_code == 0, result.output
    assert result.output.index("auc=0.75") < result.output.index("auc=0.87")

    result = runner.invoke(app, ["runs", "show", seeded])
    assert result.exit_code == 0, result.output
    assert "max_depth" in result.output
    assert "model" in result.output


def test_models_promote_rollback_history(seeded: str) -> None:
    assert (
        runner.invoke(app, ["models", "promote", "churn", "1", "--to", "production"]).exit_code == 0
    )
    result = runner.invoke(
        app, ["models", "promote", "churn", "2", "--to", "production", "--reason", "better auc"]
    )
    assert result.exit_code == 0, result.output
    assert "churn v2 is now production" in result.output
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"]).output)
    assert listed[0]["aliases"] == {"production": 2}
    versions = json.loads(runner.invoke(app, ["models", "versions", "churn", "--json"]).output)
    assert [(v["version"], v["stage"]) for v in versions] == [(2, "production"), (1, "archived")]

    result = runner.invoke(app, ["models", "rollback", "churn"])
    assert result.exit_code == 0, result.output
    assert "rolled back to v1" in result.output
    history = json.loads(runner.invoke(app, ["models", "history", "churn", "--json"]).output)
    assert [h["action"] for h in history] == [
        "register",
        "register",
        "promote",
        "promote",
        "rollback",
    ]
    assert history[3]["reason"] == "better auc"
    table = runner.invoke(app, ["models", "history", "churn"]).output
    assert "rollback" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "0" * 32], "error (not_found): run"),
        (["runs", "list", "missing"], "error (not_found): experiment 'missing' not found"),
        (["runs", "list", "churn", "--filter", "metrics.auc >"], "error (invalid_input): filter"),
        (["models", "promote", "churn", "9", "--to", "production"], "error (not_found)"),
        (["models", "rollback", "churn"], "error (conflict): model 'churn' has no earlier"),
        (["models", "promote", "churn", "1", "--to", "a/b"], "error (invalid_input)"),
        (["models", "history", "nope"], "error (not_found): model 'nope' not found"),
    ],
)
def test_errors_are_one_line_without_traceback(seeded: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_bad_tracking_uri_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKING_URI", "postgres://x")
    result = runner.invoke(app, ["experiments", "list"])
    assert result.exit_code == 1
    assert "unsupported TRACKING_URI" in result.stderr


def test_installed_console_script(seeded: str) -> None:
    script = shutil.which("tracking", path=str(Path(sys.executable).parent))
    assert script is not None, "the tracking console script is not installed in this environment"
    env = {k: v for k, v in os.environ.items() if k not in {"TRACKING_URI", "ARTIFACT_URI"}}
    listed = subprocess.run(
        [script, "experiments", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert [e["name"] for e in json.loads(listed.stdout)] == ["churn"]
    failed = subprocess.run(
        [script, "models", "rollback", "churn"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("error (conflict)")
    assert "Traceback" not in failed.stderr
