"""``tracking models traffic ...`` and ``tracking events ...`` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.models_fixtures import save_model_files
from tracking import ExperimentLogger, ModelRegistry
from tracking.cli import app

runner = CliRunner()


@pytest.fixture
def seeded(tmp_path: Path) -> None:
    files = save_model_files(tmp_path / "files")
    run = ExperimentLogger().log_experiment("churn", artifacts={"model": files["json"]})
    registry = ModelRegistry(actor="cli-test")
    registry.register_model("churn", run.run_id, "model")
    registry.register_model("churn", run.run_id, "model")
    registry.promote("churn", 1, to="production")
    registry.promote("churn", 2, to="challenger")


def _json(args: list[str]) -> object:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_traffic_show_set_clear(seeded: None) -> None:
    shown = _json(["models", "traffic", "show", "churn", "--json"])
    assert shown["weights"] == {"production": 100}  # type: ignore[index]
    result = runner.invoke(
        app,
        ["models", "traffic", "set", "churn", "--weight", "production=90",
         "--weight", "challenger=10", "--sticky", "player_id", "--reason", "canary"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "production=90%" in result.output
    assert "challenger=10%" in result.output
    policy = _json(["models", "traffic", "show", "churn", "--json"])
    assert policy["weights"] == {"production": 90, "challenger": 10}  # type: ignore[index]
    assert policy["sticky"] == "player_id"  # type: ignore[index]
    assert policy["reason"] == "canary"  # type: ignore[index]
    result = runner.invoke(app, ["models", "traffic", "clear", "churn", "--reason", "done"])
    assert result.exit_code == 0, result.output
    assert "all traffic to production" in result.output
    history = _json(["models", "history", "churn", "--json"])
    assert [h["action"] for h in history][-2:] == ["traffic", "traffic"]  # type: ignore[union-attr,index]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--weight", "production=90"], "sum to 100"),
        (["--weight", "production"], "alias=percent"),
        (["--weight", "production=ninety"], "alias=percent"),
        (["--weight", "production=90", "--weight", "ghost=10"], "no 'ghost' alias"),
        (["--weight", "production=100", "--shadow", "production"], "both weighted and shadow"),
        (["--weight", "production=100", "--sticky", "a-b"], "sticky"),
    ],
)
def test_bad_policies_are_one_line_errors(seeded: None, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["models", "traffic", "set", "churn", *args])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    shown = _json(["models", "traffic", "show", "churn", "--json"])
    assert shown["revision"] == 0  # type: ignore[index]


def test_events_list_and_deliver(seeded: None, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _json(["events", "list", "--json"])
    assert [e["event"]["type"] for e in events] == [  # type: ignore[union-attr,index]
        "model_version.registered",
        "model_version.registered",
        "alias.moved",
        "alias.moved",
    ]
    result = runner.invoke(app, ["events", "list"])
    assert result.exit_code == 0, result.output
    assert "alias.moved" in result.output
    assert _json(["events", "list", "--status", "dead", "--json"]) == []
    result = runner.invoke(app, ["events", "list", "--status", "lost"])
    assert result.exit_code != 0

    result = runner.invoke(app, ["events", "deliver"])
    assert result.exit_code == 1
    assert "EVENT_WEBHOOKS" in result.output
    # A webhook whose address is refused: each event fails its first attempt and stays pending.
    monkeypatch.setenv(
        "EVENT_WEBHOOKS",
        json.dumps([{"name": "meta", "url": "https://169.254.169.254/", "secret": "x" * 16}]),
    )
    report = _json(["events", "deliver", "--json"])
    assert len(report["retrying"]) == 4  # type: ignore[index,arg-type]
    pending = _json(["events", "list", "--status", "pending", "--json"])
    assert {e["attempts"] for e in pending} == {1}  # type: ignore[union-attr,index]
    assert all("not a public address" in e["last_error"] for e in pending)  # type: ignore[union-attr,index]
    monkeypatch.setenv("EVENT_WEBHOOKS", '[{"name": "x", "url": "ftp://x", "secret": "s"}]')
    result = runner.invoke(app, ["events", "deliver"])
    assert result.exit_code == 1
    assert "bad event settings" in result.output
