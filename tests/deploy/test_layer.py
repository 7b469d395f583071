"""The tracking SDK layer: build it as ``sam build`` would, then use it with nothing else.

Builds ``layers/tracking-sdk`` into a temporary ARTIFACTS_DIR (pip downloads the pinned wheels
from PyPI: ~10 s), then starts a Python *without site-packages* (``-S``) whose only extra path
is the layer's ``python/`` folder, imports ``tracking`` and logs an experiment into SQLite.
So the layer holds the SDK's whole runtime closure. The wheels are fetched for this
interpreter's version (``LAYER_PYTHON_VERSION``); ``sam build`` fetches them for 3.12.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "tracking-sdk"

USE_THE_LAYER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import tracking
    from tracking import ExperimentLogger

    assert "site-packages" not in tracking.__file__, tracking.__file__
    folder = Path(sys.argv[1])
    logger = ExperimentLogger(
        tracking_uri="sqlite:///" + str(folder / "tracking.db"),
        artifact_uri="file://" + str(folder / "artifacts"),
    )
    run = logger.log_experiment(
        name="layer_smoke", params={"max_depth": 5}, metrics={"auc": 0.87}
    )
    again = logger.get_run(run.run_id)
    print(again.run_id, sorted(again.params), sorted(again.metrics))
    for module in ("fastapi", "boto3", "typer", "xgboost"):
        assert module not in sys.modules, module
    """
)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_layer_builds_and_logs_an_experiment_on_its_own(tmp_path: Path) -> None:
    artifacts = tmp_path / "layer"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    build = subprocess.run(
        [
            "make", "--no-print-directory", "-f", str(LAYER / "Makefile"),
            "build-TrackingSdkLayer", f"ARTIFACTS_DIR={artifacts}",
            f"PYTHON={sys.executable}", f"LAYER_PYTHON_VERSION={version}",
        ],
        cwd=tmp_path,  # SAM runs make in a scratch folder, not in the repository
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    packages = artifacts / "python"
    assert (packages / "tracking" / "__init__.py").is_file()
    assert (packages / "pynamodb").is_dir()
    for absent in ("boto3", "botocore", "typer", "fastapi", "bin"):
        assert not (packages / absent).exists(), absent
    assert not (ROOT / "build").exists()  # the SDK was built from a copy

    store = tmp_path / "store"
    store.mkdir()
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(packages)}
    used = subprocess.run(
        [sys.executable, "-S", "-c", USE_THE_LAYER, str(store)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert used.returncode == 0, used.stdout + used.stderr
    assert "['max_depth'] ['auc']" in used.stdout


def test_layer_requirements_are_pinned_like_the_project() -> None:
    project = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    layer = [
        line
        for line in (LAYER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all("==" in line for line in layer), layer
    for line in layer:
        name, version = line.split("==")
        if name.lower() in project:
            assert project[name.lower()] == version, name
