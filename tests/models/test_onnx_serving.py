"""ONNX versions served from the registry: the generic predictor, built from the signature."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from pydantic import BaseModel, Field, ValidationError

from models import catalog
from models.tabular import TabularPredictor
from tests.models_fixtures import save_onnx_model, train_logistic
from tracking import ExperimentLogger, InvalidInput, ModelRegistry


class TeamFeatures(BaseModel):
    sessions_7d: Annotated[int, Field(ge=0, le=100)]
    playtime_7d: float
    iap_count: int | None = None


@dataclass
class World:
    logger: ExperimentLogger
    registry: ModelRegistry
    pipeline: Any
    folder: Path

    def register(self, name: str, path: Path, **kwargs: object) -> None:
        run = self.logger.log_experiment("team", artifacts={"model": path})
        self.registry.register_model(name, run.run_id, "model", flavor="onnx", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def world(tmp_path: Path) -> World:
    logger = ExperimentLogger(f"sqlite:///{tmp_path / 't.db'}", f"file://{tmp_path / 'a'}")
    registry = ModelRegistry(store=logger.metadata, artifact_store=logger.artifacts)  # type: ignore[arg-type]
    return World(logger, registry, train_logistic(), tmp_path)


def test_a_new_onnx_model_is_served_from_its_signature(world: World) -> None:
    world.register("team-onnx", save_onnx_model(world.folder / "m.onnx", world.pipeline),
                   signature=TeamFeatures)  # fmt: skip
    predictor = catalog.load_predictor(world.registry, "team-onnx", version=1)
    assert isinstance(predictor, TabularPredictor)
    served = catalog.served_model(world.registry.get_version("team-onnx", 1))
    assert served.request.__name__ == "TeamOnnxRequest"
    rows = [
        served.request.model_validate({"sessions_7d": 3, "playtime_7d": 0.5, "iap_count": 1}),
        served.request.model_validate({"sessions_7d": 0, "playtime_7d": 0.9}),  # iap_count: NaN
    ]
    expected = world.pipeline.predict_proba(np.array([[3, 0.5, 1], [0, 0.9, np.nan]]))[:, 1]
    answers = predictor.predict_records(rows)
    assert [a["model_version"] for a in answers] == ["v1", "v1"]
    assert [a["prediction"] for a in answers] == pytest.approx(expected.tolist(), abs=1e-5)
    assert 0.0 <= predictor.warm_up()[0]["prediction"] <= 1.0
    with pytest.raises(ValidationError, match="sessions_7d"):
        served.request.model_validate({"sessions_7d": 101, "playtime_7d": 0.5})


def test_a_zipmap_classifier_is_refused_with_the_conversion_fix(world: World) -> None:
    path = save_onnx_model(world.folder / "z.onnx", world.pipeline, zipmap=True)
    world.register("zipped", path, signature=TeamFeatures)
    with pytest.raises(InvalidInput, match="zipmap"):
        catalog.load_predictor(world.registry, "zipped", version=1)


def test_a_signature_of_another_width_is_refused(world: World) -> None:
    world.register("narrow", save_onnx_model(world.folder / "n.onnx", world.pipeline),
                   signature={"sessions_7d": "int", "playtime_7d": "float"})  # fmt: skip
    with pytest.raises(InvalidInput, match="takes 3 columns"):
        catalog.load_predictor(world.registry, "narrow", version=1)


def test_an_onnx_version_without_a_signature_is_not_servable(world: World) -> None:
    world.register("bare", save_onnx_model(world.folder / "b.onnx", world.pipeline))
    with pytest.raises(InvalidInput, match="no signature"):
        catalog.load_predictor(world.registry, "bare", version=1)
