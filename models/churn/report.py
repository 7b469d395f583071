"""Training reports: PNG plots (matplotlib, headless) and the model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: training runs in CI, containers and notebooks alike

import matplotlib.pyplot as plt  # after choosing the backend
import numpy as np

from models.churn.evaluation import (
    RiskThresholds,
    calibration_bins,
    precision_recall_curve,
    roc_curve,
)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)
    return path


def plot_roc(labels: np.ndarray, scores: np.ndarray, auc: float, path: Path) -> Path:
    fpr, tpr, _ = roc_curve(labels, scores)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC (test)")
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_precision_recall(labels: np.ndarray, scores: np.ndarray, path: Path) -> Path:
    precision, recall, _ = precision_recall_curve(labels, scores)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot(recall, precision)
    axes.axhline(labels.mean(), linestyle="--", color="grey", label="churn rate")
    axes.set(xlabel="Recall", ylabel="Precision", title="Precision-recall (test)", ylim=(0, 1.02))
    axes.legend(loc="upper right")
    return _save(figure, path)


def plot_calibration(labels: np.ndarray, scores: np.ndarray, brier: float, path: Path) -> Path:
    predicted, observed, counts = calibration_bins(labels, scores)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axes.plot(predicted, observed, marker="o", label=f"model (Brier {brier:.3f})")
    for x, y, n in zip(predicted, observed, counts, strict=True):
        axes.annotate(str(int(n)), (x, y), fontsize=7, textcoords="offset points", xytext=(3, -9))
    axes.set(xlabel="Predicted churn probability", ylabel="Observed churn rate",
             title="Calibration (test)", xlim=(0, 1), ylim=(0, 1))  # fmt: skip
    axes.legend(loc="upper left")
    return _save(figure, path)


def plot_feature_importance(importance: dict[str, float], path: Path) -> Path:
    ordered = sorted(importance.items(), key=lambda item: item[1])
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.barh([name for name, _ in ordered], [value for _, value in ordered])
    axes.set(xlabel="Total gain", title="Feature importance")
    return _save(figure, path)


def model_card(
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    thresholds: RiskThresholds,
    data_summary: dict[str, Any],
    importance: dict[str, float],
) -> str:
    """A Markdown model card: data, metrics, intended use and limits."""
    top = sorted(importance.items(), key=lambda item: -item[1])[:5]
    lines = [
        "# Model card: player churn (XGBoost)",
        "",
        "## Intended use",
        "Scores how likely a mobile-game player is to stop playing in the coming week, so that",
        "live-ops can target retention offers. Use the risk level (low / medium / high) to rank",
        "players for an intervention; do not use it to deny service or for decisions about",
        "individuals without review.",
        "",
        "## Data",
        f"- Source: {data_summary['source']}",
        f"- Rows: {data_summary['rows']} (train {data_summary['train']}, validation "
        f"{data_summary['validation']}, test {data_summary['test']}); seed {data_summary['seed']}",
        f"- Churn rate: {data_summary['churn_rate']:.3f}",
        "- Features: sessions, playtime and purchases in the last 7 days (required); install age,",
        "  previous-week sessions, session length, friends, level, 30-day spend and days since the",
        "  last login (optional, missing values allowed).",
        "",
        "## Training",
        *(f"- {key}: {value}" for key, value in sorted(params.items())),
        "",
        "## Metrics (held-out test split)",
        "| metric | value |",
        "|---|---|",
        *(f"| {key} | {value:.4f} |" for key, value in sorted(metrics.items())),
        "",
        "## Risk levels",
        f"- low: p < {thresholds.medium:.4f}",
        f"- medium: {thresholds.medium:.4f} <= p < {thresholds.high:.4f} (medium is the best-F1",
        "  threshold on validation data)",
        f"- high: p >= {thresholds.high:.4f} (lowest threshold reaching the target precision on",
        "  validation data)",
        "",
        "## Most important features (gain)",
        *(f"- {name}: {value:.1f}" for name, value in top),
        "",
        "## Limits",
        "- Trained on synthetic data that imitates real telemetry; retrain on your game's data",
        "  before relying on it. Scores drift when the game, its economy or its audience change:",
        "  monitor calibration and retrain regularly.",
        "- Purchases are zero-inflated; the model is least certain for new payers and for players",
        "  in their first two weeks.",
        "",
    ]
    return "\n".join(lines)
