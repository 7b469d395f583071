"""A hypothesis state machine over register / promote / rollback / archive sequences.

The registry is compared step by step with a small model of its rules, and after every step
the invariants are checked: at most one version in production and it is the pointer's target; the
staging pointer's target is in staging; no version is both.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.models_fixtures import save_model_files
from tracking import Conflict, ExperimentLogger, ModelRegistry, NotFound, Stage
from tracking.backends import build_stores
from tracking.config import load_config

ALIASES = ["production", "staging", "challenger"]


class RegistryMachine(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        folder = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        if self.backend == "sqlite":
            config = load_config(f"sqlite:///{folder / 'db.sqlite'}", f"file://{folder / 'a'}")
        else:
            from moto import mock_aws

            self.stack.enter_context(mock_aws())
            config = load_config("dynamodb://machine", "s3://machine-bucket/a")
        store, artifacts = build_stores(config)
        store.initialize()
        artifacts.initialize()
        files = save_model_files(folder / "files")
        logger = ExperimentLogger(metadata_store=store, artifact_store=artifacts)
        self.run_id = logger.log_experiment("churn", artifacts={"model": files["json"]}).run_id
        self.registry = ModelRegistry(store=store, artifact_store=artifacts, actor="machine")
        # The model of the rules: alias -> (target, earlier targets), version -> stage.
        self.aliases: dict[str, tuple[int, list[int]]] = {}
        self.stages: dict[int, Stage] = {}

    def teardown(self) -> None:
        self.stack.close()

    # -- rules --------------------------------------------------------------------------------

    @rule()
    def register(self) -> None:
        mv = self.registry.register_model("churn", self.run_id, "model")
        assert mv.version == len(self.stages) + 1
        self.stages[mv.version] = Stage.NONE

    @precondition(lambda self: self.stages)
    @rule(data=st.data(), alias=st.sampled_from(ALIASES))
    def promote(self, data: st.DataObject, alias: str) -> None:
        number = data.draw(st.integers(1, len(self.stages) + 1), label="version")
        expect = self._expect_promote(number, alias)
        if expect is NotFound or expect is Conflict:
            with pytest.raises(expect):
                self.registry.promote("churn", number, to=alias)
            return
        moved = self.registry.promote("churn", number, to=alias)
        assert moved.stage is self.stages[number]

    @rule(alias=st.sampled_from(ALIASES))
    def rollback(self, alias: str) -> None:
        expect = self._expect_rollback(alias)
        if expect is Conflict or expect is NotFound:
            with pytest.raises(expect):
                self.registry.rollback("churn", alias=alias)
            return
        moved = self.registry.rollback("churn", alias=alias)
        assert moved.version == self.aliases[alias][0]

    @precondition(lambda self: self.stages)
    @rule(data=st.data())
    def archive(self, data: st.DataObject) -> None:
        number = data.draw(st.integers(1, len(self.stages)), label="version")
        if self._target("production") == number:
            with pytest.raises(Conflict):
                self.registry.archive("churn", number)
            return
        if self._target("staging") == number:
            del self.aliases["staging"]
        self.stages[number] = Stage.ARCHIVED
        assert self.registry.archive("churn", number).stage is Stage.ARCHIVED

    # -- the model's rules ----------------------------------------------------------------------

    def _target(self, alias: str) -> int | None:
        return self.aliases[alias][0] if alias in self.aliases else None

    def _expect_promote(self, number: int, alias: str) -> type[Exception] | None:
        if not self.stages:
            return NotFound  # no model yet
        if number not in self.stages:
            return NotFound
        current = self._target(alias)
        if current == number:
            return None
        if alias == "staging" and self._target("production") == number:
            return Conflict
        previous = [] if current is None else [*self.aliases[alias][1], current]
        self.aliases[alias] = (number, previous)
        self._restage(alias, number, current)
        return None

    def _expect_rollback(self, alias: str) -> type[Exception] | None:
        if not self.stages:
            return NotFound
        if alias not in self.aliases or not self.aliases[alias][1]:
            return Conflict
        current, previous = self.aliases[alias]
        number = previous[-1]
        if alias == "staging" and self._target("production") == number:
            return Conflict
        self.aliases[alias] = (number, previous[:-1])
        self._restage(alias, number, current)
        return None

    def _restage(self, alias: str, number: int, current: int | None) -> None:
        if alias == "production":
            if current is not None:
                self.stages[current] = Stage.ARCHIVED
            self.stages[number] = Stage.PRODUCTION
            if self._target("staging") == number:
                del self.aliases["staging"]
        elif alias == "staging":
            if current is not None:
                self.stages[current] = Stage.NONE
            self.stages[number] = Stage.STAGING

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def matches_model_and_invariants(self) -> None:
        if not self.stages:
            return
        versions = {v.version: v.stage for v in self.registry.store.iter_versions("churn")}
        assert versions == self.stages
        aliases = self.registry.get_model("churn").aliases
        assert aliases == {alias: target for alias, (target, _) in self.aliases.items()}
        production = [n for n, stage in versions.items() if stage is Stage.PRODUCTION]
        assert production == ([aliases["production"]] if "production" in aliases else [])
        if "staging" in aliases:
            assert versions[aliases["staging"]] is Stage.STAGING


class MotoRegistryMachine(RegistryMachine):
    backend = "moto"


TestRegistrySQLite = RegistryMachine.TestCase
TestRegistrySQLite.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRegistryMoto = MotoRegistryMachine.TestCase
TestRegistryMoto.settings = settings(
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
