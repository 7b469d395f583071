"""samconfig.toml: dev and prod deploy the same template with the template's parameter names."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_template import TEMPLATE, CloudFormationLoader

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with (ROOT / "samconfig.toml").open("rb") as file:
        return tomllib.load(file)


def _overrides(deploy: dict[str, Any]) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in shlex.split(deploy["parameter_overrides"]))
    return dict(pairs)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_environment_deploys_with_the_templates_parameters(
    config: dict[str, Any], environment: str
) -> None:
    import yaml

    parameters = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)["Parameters"]
    deploy = config[environment]["deploy"]["parameters"]
    assert deploy["stack_name"].endswith(environment)
    assert re.fullmatch(r"[a-z]{2}-[a-z]+-\d", deploy["region"])
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"}
    assert deploy["resolve_image_repos"] is True
    overrides = _overrides(deploy)
    assert {"Stage", "TablePrefix", "ArtifactPrefix"} <= set(overrides)
    assert set(overrides) <= set(parameters), set(overrides) - set(parameters)
    assert overrides["Stage"] == environment
    for name, value in overrides.items():
        allowed = parameters[name].get("AllowedValues")
        if allowed is not None:
            assert value in [str(choice) for choice in allowed], (name, value)
        pattern = parameters[name].get("AllowedPattern")
        if pattern is not None:
            assert re.fullmatch(pattern, value), (name, value)


def test_both_environments_share_parameter_names_and_prod_confirms(
    config: dict[str, Any],
) -> None:
    dev = config["dev"]["deploy"]["parameters"]
    prod = config["prod"]["deploy"]["parameters"]
    assert set(_overrides(dev)) <= set(_overrides(prod))
    assert prod["confirm_changeset"] is True
    assert _overrides(dev)["TablePrefix"] != _overrides(prod)["TablePrefix"]
    assert dev["stack_name"] != prod["stack_name"]
