"""``.github/workflows``: linted offline, and held to what .ci/run and the deploy policy say.

jactionlint (a dev requirement: jdx's actionlint fork, whose wheel ships the binary) checks the
syntax, the expressions, the job graph and the policy rules (actions pinned by commit,
``permissions``, timeouts, concurrency). Nothing here asks GitHub anything.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CI_RUN = ROOT / ".ci" / "run"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _jactionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("jactionlint")
    assert binary.is_file(), f"{binary} missing: `make install-dev` installs it"
    return subprocess.run(
        # No shellcheck on this machine: skip it on purpose rather than by accident.
        [str(binary), "--no-online", "--shellcheck=", "--no-color", *map(str, paths)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip


def _load(name: str) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); give it back its name.
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in loaded:
        loaded["on"] = loaded.pop(True)
    return loaded


def _run_lines(workflow: dict[str, Any]) -> list[str]:
    return [
        step["run"] for job in workflow["jobs"].values() for step in job.get("steps", ())
        if "run" in step
    ]  # fmt: skip


def _make_targets(commands: list[str]) -> set[str]:
    """``make`` targets named by shell command lines (variables such as PYTHON=... dropped)."""
    targets: set[str] = set()
    for command in commands:
        for line in command.splitlines():
            words = shlex.split(line, comments=True)
            while words and words[0] in ("sudo", "-E"):
                words = words[1:]
            if words[:1] == ["make"]:
                targets |= {w for w in words[1:] if "=" not in w and not w.startswith("-")}
    return targets


def test_workflows_lint_clean() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "deploy.yml"}

    result = _jactionlint(*files)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """Proof that the lint bites: a job that needs a job which does not exist, and a tag pin."""
    text = (WORKFLOWS / "deploy.yml").read_text().replace("needs: [ci]", "needs: [tests]", 1)
    text = re.sub(r"@[0-9a-f]{40} # (v[\d.]+)", r"@\1", text, count=1)
    broken = tmp_path / ".github" / "workflows" / "deploy.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text)
    (broken.parent / "ci.yml").write_text((WORKFLOWS / "ci.yml").read_text())

    result = _jactionlint(broken)

    assert result.returncode != 0
    assert '"tests"' in result.stdout, result.stdout
    assert "commit" in result.stdout.lower(), result.stdout


def test_every_action_is_pinned_by_commit_with_its_version_named() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if match is None or match.group(1).startswith("./"):
                continue
            assert PINNED.match(match.group(1)), (path.name, line)
            assert re.match(r"^\s+# v\d", match.group(2)), (path.name, line)


def test_ci_runs_what_ci_run_runs() -> None:
    """Every ``make`` target of .ci/run (the machine CI) is a step of the GitHub workflow."""
    ci_run = _make_targets([CI_RUN.read_text()])
    assert {"test", "load", "image-check"} <= ci_run  # the parse found them

    workflow = _make_targets(_run_lines(_load("ci.yml")))

    assert ci_run <= workflow, ci_run - workflow
    assert "sam-validate" in workflow


def test_ci_tests_both_ends_of_the_python_range_on_pull_requests() -> None:
    ci = _load("ci.yml")
    assert set(ci["on"]) == {"pull_request", "workflow_call"}
    test = ci["jobs"]["test"]
    assert test["strategy"]["matrix"]["python"] == ["3.11", "3.13"]
    assert any("make test" in step.get("run", "") for step in test["steps"])
    assert ci["permissions"] == {"contents": "read"}
    image = "\n".join(step.get("run", "") for step in ci["jobs"]["image"]["steps"])
    assert "docker build" in image


def _deploy_steps(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_deploy_gates_on_ci_and_uses_oidc_without_stored_keys() -> None:
    deploy = _load("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"], "tags": ["v*"]}}
    assert deploy["permissions"] == {"contents": "read"}
    jobs = deploy["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "secrets." not in text  # no AWS keys: the role comes from the OIDC token
    assert "aws-access-key-id" not in text

    for name, stage, condition in (
        ("dev", "dev", "github.ref == 'refs/heads/main'"),
        ("prod", "prod", "startsWith(github.ref, 'refs/tags/v')"),
    ):
        job = jobs[name]
        assert job["needs"] == ["ci"], name
        assert job["if"] == condition, name
        # prod waits for the environment's required reviewers (configured on GitHub).
        assert job["environment"] == stage, name
        assert job["permissions"] == {"contents": "read", "id-token": "write"}, name
        credentials = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
        assert credentials, name
        assert credentials[0]["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
        steps = _deploy_steps(job)
        assert f"sam build --config-env {stage}" in steps, name
        assert f"sam deploy --config-env {stage}" in steps, name
    # Only the deploy jobs may mint an OIDC token.
    assert "id-token" not in (WORKFLOWS / "ci.yml").read_text()


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (["make test\nmake load  # comment"], {"test", "load"}),
        (["sudo make image-check", "make sam-validate PYTHON=python3.12"],
         {"image-check", "sam-validate"}),
        (["echo make test", "docker build ."], set()),
    ],
)  # fmt: skip
def test_make_target_parser(commands: list[str], expected: set[str]) -> None:
    assert _make_targets(commands) == expected
