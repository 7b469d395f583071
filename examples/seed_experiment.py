"""The seed example: train a small XGBoost churn model and log it with ``log_experiment``.

Runs against whatever ``TRACKING_URI`` / ``ARTIFACT_URI`` name (the embedded default when unset).
The model is saved in XGBoost's native JSON format, never as a pickle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost as xgb

from tracking import ExperimentLogger


def synthetic_players(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sessions, playtime and purchases in the last 7 days, and whether the player churned."""
    rng = np.random.default_rng(seed)
    sessions = rng.poisson(6, rows)
    playtime = rng.gamma(2.0, 30.0, rows) * (sessions > 0)
    iap = rng.binomial(3, 0.1, rows)
    logit = 1.5 - 0.35 * sessions - 0.01 * playtime - 0.8 * iap + rng.normal(0, 0.7, rows)
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.column_stack([sessions, playtime, iap]).astype(float), churned


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC via the rank-sum statistic (ties share ranks)."""
    order = scores.argsort()
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    positives = labels.sum()
    negatives = len(labels) - positives
    return float(
        (ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def main() -> None:
    features, labels = synthetic_players(4000, seed=7)
    train, test = slice(0, 3000), slice(3000, None)
    params = {"max_depth": 5, "learning_rate": 0.1}
    booster = xgb.train(
        {"objective": "binary:logistic", "eval_metric": "auc", "seed": 7, **params},
        xgb.DMatrix(features[train], label=labels[train]),
        num_boost_round=60,
    )
    scores = booster.predict(xgb.DMatrix(features[test]))
    predicted = scores >= 0.5
    precision = float(labels[test][predicted].mean()) if predicted.any() else 0.0

    out = Path(".tracking/examples")
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "churn_v3.json"
    booster.save_model(model_path)

    logger = ExperimentLogger()
    run = logger.log_experiment(
        name="churn_xgboost_v3",
        params=params,
        metrics={"auc": round(auc(labels[test], scores), 4), "precision": round(precision, 4)},
        artifacts={"model_path": str(model_path)},
    )
    artifact = run.artifacts["model_path"]
    print(f"logged run {run.run_id} in experiment {run.experiment_name}")
    print(f"  metrics: {run.latest_metrics}")
    print(f"  model:   {artifact.uri} (sha256 {artifact.sha256[:12]}..., {artifact.size} bytes)")


if __name__ == "__main__":
    main()
