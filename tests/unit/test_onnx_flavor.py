"""The ``onnx`` flavor: an onnxruntime CPU session from verified bytes; nothing else loads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.models_fixtures import save_model_files, save_onnx_model, train_logistic
from tracking import ExperimentLogger, InvalidInput, ModelRegistry, NotFound
from tracking.entities import Flavor
from tracking.flavors import ONNX_THREADS, load_model, load_onnx


def test_a_converted_pipeline_loads_on_the_cpu_with_one_thread(tmp_path: Path) -> None:
    pipeline = train_logistic()
    path = save_onnx_model(tmp_path / "model.onnx", pipeline)
    session = load_model(path, Flavor.ONNX)
    assert session.get_providers() == ["CPUExecutionProvider"]
    options = session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (ONNX_THREADS, 1)
    rows = np.array([[0.2, np.nan, 0.4]], dtype=np.float32)  # NaN: imputed inside the graph
    [probabilities] = session.run(["probabilities"], {"input": rows})
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(rows), atol=1e-5)


@pytest.mark.parametrize(
    "raw",
    [
        pickle.dumps({"not": "a model"}),
        b"",
        b"{not a protobuf}",
        b"\x08\x07\x12\x04junk",  # a protobuf field (ir_version) then garbage
    ],
    ids=["pickle", "empty", "json", "truncated-protobuf"],
)
def test_anything_but_an_onnx_model_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"pickle|not a valid ONNX model"):
        load_onnx(raw)


def test_registration_refuses_a_non_onnx_artifact_and_writes_nothing(tmp_path: Path) -> None:
    logger = ExperimentLogger(f"sqlite:///{tmp_path / 't.db'}", f"file://{tmp_path / 'a'}")
    files = save_model_files(tmp_path / "files")
    run = logger.log_experiment("team", artifacts={"booster": files["json"], "pkl": files["pkl"]})
    registry = ModelRegistry(store=logger.metadata, artifact_store=logger.artifacts)  # type: ignore[arg-type]
    for artifact in ("booster", "pkl"):
        with pytest.raises(InvalidInput, match=r"ONNX|pickle"):
            registry.register_model("team-onnx", run.run_id, artifact, flavor="onnx")
    with pytest.raises(NotFound):
        registry.get_model("team-onnx")
