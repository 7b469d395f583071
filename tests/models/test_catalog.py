"""Loading picks the predictor by the version's flavor and signature, never by a name table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
from pydantic import BaseModel, Field, ValidationError

from models import catalog
from models.churn.predictor import ChurnPredictor
from models.tabular import TabularPredictor
from tests.models_fixtures import FEATURES, save_model_files, train_booster
from tracking import ExperimentLogger, InvalidInput, ModelRegistry


class TeamFeatures(BaseModel):
    sessions_7d: Annotated[int, Field(ge=0, le=100)]
    playtime_7d: float
    iap_count: int | None = None
    player_id: str | None = None  # not a model column: ignored by the predictor


@dataclass
class World:
    registry: ModelRegistry
    run_id: str

    def register(self, name: str, **kwargs: object) -> None:
        self.registry.register_model(name, self.run_id, "model", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def world(tmp_path: Path) -> World:
    logger = ExperimentLogger(f"sqlite:///{tmp_path / 't.db'}", f"file://{tmp_path / 'a'}")
    files = save_model_files(tmp_path / "files")
    run = logger.log_experiment("team", artifacts={"model": files["json"]})
    registry = ModelRegistry(store=logger.metadata, artifact_store=logger.artifacts)  # type: ignore[arg-type]
    return World(registry, run.run_id)


def test_a_model_without_a_package_is_served_from_its_signature(world: World) -> None:
    world.register("team-model", signature=TeamFeatures)
    predictor = catalog.load_predictor(world.registry, "team-model", version=1)
    assert isinstance(predictor, TabularPredictor)
    served = catalog.served_model(world.registry.get_version("team-model", 1))
    assert served.request.__name__ == "TeamModelRequest"
    row = served.request.model_validate({"sessions_7d": 3, "playtime_7d": 0.5, "iap_count": 1})
    expected = train_booster().inplace_predict(np.asarray([[3, 0.5, 1]], dtype=np.float32))
    [answer] = predictor.predict_records([row])
    assert answer == {"prediction": pytest.approx(float(expected[0])), "model_version": "v1"}
    with pytest.raises(ValidationError, match="sessions_7d"):
        served.request.model_validate({"sessions_7d": 101, "playtime_7d": 0.5})
    with pytest.raises(ValidationError, match="playtime_7d"):
        served.request.model_validate({"sessions_7d": 1})
    with pytest.raises(ValidationError, match="sessions_7d"):
        served.request.model_validate({"sessions_7d": True, "playtime_7d": 1})
    missing = served.request.model_validate({"sessions_7d": 3, "playtime_7d": 0.5})
    with_nan = train_booster().inplace_predict(np.asarray([[3, 0.5, np.nan]], dtype=np.float32))
    assert predictor.predict_records([missing])[0]["prediction"] == pytest.approx(
        float(with_nan[0])
    )


def test_the_flavor_not_the_name_picks_the_predictor(world: World) -> None:
    # "rag" is the retriever package's name, but this version is an xgboost model: it is served
    # by the xgboost flavor's generic predictor, with the signature inferred at registration.
    world.register("rag")
    predictor = catalog.load_predictor(world.registry, "rag", version=1)
    assert isinstance(predictor, TabularPredictor)
    assert predictor.columns == tuple(FEATURES)
    assert (
        catalog.served_model(world.registry.get_version("rag", 1)).request.__name__ == "RagRequest"
    )


def test_the_churn_package_serves_churn_versions(world: World) -> None:
    # The fixture booster lacks churn's columns and thresholds: the churn package's own
    # predictor is chosen, and it refuses the version rather than serving it wrongly.
    world.register("churn")
    assert catalog.served_model(world.registry.get_version("churn", 1)).factory == (
        ChurnPredictor.from_version
    )
    with pytest.raises(InvalidInput, match="risk_thresholds"):
        catalog.load_predictor(world.registry, "churn", version=1)


def test_a_signature_without_the_model_columns_is_refused(world: World) -> None:
    world.register("partial", signature={"sessions_7d": "int"})
    with pytest.raises(InvalidInput, match="lacks model columns"):
        catalog.load_predictor(world.registry, "partial", version=1)


def test_outcomes_are_counted_per_label_with_or_without_a_labeller() -> None:
    churn, rag = catalog.package("churn"), catalog.package("rag")
    assert churn is not None
    assert rag is not None
    records = [{"risk_level": level} for level in ("low", "high", "low")]
    assert churn.count_outcomes(records) == {"low": 2, "high": 1}
    assert rag.count_outcomes([{"passages": []}] * 4) == {"none": 4}
