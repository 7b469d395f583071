"""Small real models for tests: XGBoost boosters saved in native JSON and UBJ, and a pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

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
