"""Test-wide settings: AWS credentials that can only ever reach moto, and a clean environment."""

from __future__ import annotations

import os

import pytest

# Fake credentials so that botocore never looks for real ones (and never reaches AWS).
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
)
for _name in ("TRACKING_URI", "ARTIFACT_URI", "AWS_ENDPOINT_URL", "AWS_PROFILE", "TRACKING_ACTOR"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _isolated_cwd(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run each test in its own folder, so the embedded default never touches the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
