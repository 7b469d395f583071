"""Small real models for tests: XGBoost boosters saved in native JSON and UBJ, a pickle, and
scikit-learn pipelines converted to ONNX."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

FEATURES = ["sessions_7d", "playtime_7d", "iap_count"]


def train_booster(seed: int = 0, rounds: int = 5) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.random((200, 3))
    y = (x[:, 0] + 0.3 * rng.random(200) > 0.6).astype(int)
    matrix = xgb.DMatrix(x, label=y, feature_names=FEATURES)
    return xgb.train({"objective": "binary:logistic", "max_depth": 2, "seed": seed}, matrix, rounds)


def save_model_files(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write ``model.json``, ``model.ubj`` and ``model.pkl`` (the same booster, pickled)."""
    folder.mkdir(parents=True, exist_ok=True)
    booster = train_booster(seed)
    paths = {
        "json": folder / "model.json",
        "ubj": folder / "model.ubj",
        "pkl": folder / "model.pkl",
    }
    booster.save_model(paths["json"])
    booster.save_model(paths["ubj"])
    paths["pkl"].write_bytes(pickle.dumps({"not": "a booster"}))
    return paths


def train_logistic(seed: int = 0) -> Any:
    """A small scikit-learn pipeline over ``FEATURES`` (NaN imputed), and its training rows."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    x = rng.random((200, 3))
    y = (x[:, 0] + 0.3 * rng.random(200) > 0.6).astype(int)
    return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(x, y)


def save_onnx_model(path: Path, pipeline: Any, *, zipmap: bool = False) -> Path:
    """``pipeline`` converted with skl2onnx (probabilities a tensor unless ``zipmap``)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    model = convert_sklearn(
        pipeline,
        initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        options={id(pipeline.steps[-1][1]): {"zipmap": zipmap}},
        target_opset={"": 18, "ai.onnx.ml": 3},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path
