"""Classification metrics, curves and risk thresholds, in NumPy (no scikit-learn needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPSILON = 1e-15


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and thresholds, highest threshold first."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    distinct = np.where(np.diff(scores))[0]
    cut = np.r_[distinct, len(labels) - 1]
    tps = np.cumsum(labels)[cut]
    fps = (cut + 1) - tps
    positives, negatives = max(tps[-1], 1), max(fps[-1], 1)
    return (
        np.r_[0.0, fps / negatives],
        np.r_[0.0, tps / positives],
        np.r_[np.inf, scores[cut]],
    )


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def precision_recall_curve(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds for every distinct score, highest threshold first."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    distinct = np.where(np.diff(scores))[0]
    cut = np.r_[distinct, len(labels) - 1]
    tps = np.cumsum(labels)[cut]
    predicted = cut + 1
    precision = tps / predicted
    recall = tps / max(labels.sum(), 1)
    return precision, recall, scores[cut]


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    p = np.clip(scores, EPSILON, 1 - EPSILON)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def brier(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean((scores - labels) ** 2))


def at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = scores >= threshold
    tp = float(np.sum(predicted & (labels == 1)))
    precision = tp / max(float(predicted.sum()), 1.0)
    recall = tp / max(float(labels.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def calibration_bins(
    labels: np.ndarray, scores: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted probability, observed churn rate and count per equal-width bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=scores, minlength=bins) / np.maximum(counts, 1)
    observed = np.bincount(which, weights=labels, minlength=bins) / np.maximum(counts, 1)
    keep = counts > 0
    return predicted[keep], observed[keep], counts[keep]


@dataclass(frozen=True)
class RiskThresholds:
    """``p < medium`` is low risk, ``medium <= p < high`` medium, ``p >= high`` high."""

    medium: float
    high: float

    def level(self, probability: float) -> str:
        if probability >= self.high:
            return "high"
        if probability >= self.medium:
            return "medium"
        return "low"

    def as_dict(self) -> dict[str, float]:
        return {"medium": self.medium, "high": self.high}


def choose_thresholds(
    labels: np.ndarray, scores: np.ndarray, high_precision: float = 0.8
) -> RiskThresholds:
    """Pick thresholds on validation data.

    ``medium`` is the threshold with the best F1 (the best trade-off for a retention campaign);
    ``high`` the lowest threshold above it whose precision reaches ``high_precision`` (players
    flagged high are churners at least that often), else the 90th percentile of scores.
    """
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall + 1e-12), 0)
    medium = float(thresholds[int(np.argmax(f1))])
    candidates = thresholds[(precision >= high_precision) & (thresholds > medium)]
    high = float(candidates.min()) if candidates.size else float(np.quantile(scores, 0.9))
    high = max(high, min(medium + 1e-6, 1.0))
    return RiskThresholds(medium=round(medium, 6), high=round(high, 6))
