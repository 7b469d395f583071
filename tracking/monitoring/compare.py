"""Pure statistics for comparing variants: AUC, logloss, Brier, bootstrap intervals, differences.

No I/O. Bootstrap resamples are drawn as per-row counts (a resample is a weight vector), so AUC
needs one sort of the scores, not one per resample: rows are sorted once, tie groups found once,
and each resample's AUC is a weighted Mann-Whitney statistic over those groups (vectorised over a
chunk of resamples). Variants are independent samples (different players), so the difference of
two variants is bootstrapped by resampling each one independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

EPSILON = 1e-15
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HISTOGRAM_BINS = 10
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 20261202
#: Rows a bootstrap uses at most (a uniform subsample beyond): 1,000 resamples x 20,000 rows
#: is a few hundred milliseconds of NumPy.
MAX_BOOTSTRAP_ROWS = 20_000
_CHUNK = 50
METRICS = ("auc", "logloss", "brier")

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval."""

    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _sorted_groups(labels: Array, scores: Array) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    order = np.argsort(scores, kind="mergesort")
    ranked = scores[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    return order, starts


def _weighted_auc(
    weights: Array, labels: Array, order: NDArray[np.intp], starts: NDArray[np.intp]
) -> Array:
    """AUC of each weight row (``weights``: resamples x rows, in the rows' original order)."""
    w = weights[:, order]
    y = labels[order]
    positive = np.add.reduceat(w * y, starts, axis=1)
    negative = np.add.reduceat(w * (1.0 - y), starts, axis=1)
    below = np.cumsum(negative, axis=1) - negative
    numerator = (positive * (below + 0.5 * negative)).sum(axis=1)
    denominator = positive.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def auc(labels: Sequence[float] | Array, scores: Sequence[float] | Array) -> float | None:
    """ROC AUC (ties count half); ``None`` without both classes. Soft labels weigh both sides."""
    y, s = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    order, starts = _sorted_groups(y, s)
    value = float(_weighted_auc(np.ones((1, len(y))), y, order, starts)[0])
    return None if np.isnan(value) else value


def _losses(labels: Array, scores: Array) -> tuple[Array, Array]:
    p = np.clip(scores, EPSILON, 1.0 - EPSILON)
    logloss = -(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p))
    brier = (scores - labels) ** 2
    return logloss, brier


def log_loss(labels: Sequence[float] | Array, scores: Sequence[float] | Array) -> float:
    loss, _ = _losses(np.asarray(labels, dtype=float), np.asarray(scores, dtype=float))
    return float(loss.mean())


def brier(labels: Sequence[float] | Array, scores: Sequence[float] | Array) -> float:
    _, loss = _losses(np.asarray(labels, dtype=float), np.asarray(scores, dtype=float))
    return float(loss.mean())


def _counts(rng: np.random.Generator, resamples: int, rows: int) -> Array:
    """Bootstrap resamples as counts per row (resamples x rows)."""
    draws = rng.integers(0, rows, size=(resamples, rows))
    flat = draws + (np.arange(resamples)[:, None] * rows)
    return (
        np.bincount(flat.ravel(), minlength=resamples * rows).reshape(resamples, rows).astype(float)
    )


def bootstrap_metrics(
    labels: Array, scores: Array, *, resamples: int, rng: np.random.Generator
) -> dict[str, Array]:
    """Each metric over ``resamples`` bootstrap resamples (NaN where AUC is undefined)."""
    n = len(labels)
    order, starts = _sorted_groups(labels, scores)
    logloss, brier_loss = _losses(labels, scores)
    out: dict[str, list[Array]] = {name: [] for name in METRICS}
    done = 0
    while done < resamples:
        size = min(_CHUNK, resamples - done)
        weights = _counts(rng, size, n)
        out["auc"].append(_weighted_auc(weights, labels, order, starts))
        out["logloss"].append(weights @ logloss / n)
        out["brier"].append(weights @ brier_loss / n)
        done += size
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _interval(point: float | None, samples: Array, level: float) -> Interval:
    finite = samples[np.isfinite(samples)]
    if point is None or len(finite) < 0.5 * len(samples) or not len(finite):
        return Interval(point, None, None)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(point, float(low), float(high))


def _cap(labels: Array, scores: Array, rng: np.random.Generator, limit: int) -> tuple[Array, Array]:
    if len(labels) <= limit:
        return labels, scores
    keep = rng.choice(len(labels), size=limit, replace=False)
    return labels[keep], scores[keep]


@dataclass(frozen=True)
class QualityResult:
    """Metrics of one variant with intervals, and the resamples kept for differences."""

    rows: int
    metrics: dict[str, Interval]
    samples: dict[str, Array]


def quality(
    labels: Sequence[float] | Array,
    scores: Sequence[float] | Array,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
    max_rows: int = MAX_BOOTSTRAP_ROWS,
) -> QualityResult:
    """AUC, logloss and Brier with bootstrap percentile intervals (fixed seed: reproducible).

    Point estimates use every row; the bootstrap uses at most ``max_rows`` of them.
    """
    y, s = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    if not len(y):
        empty = Interval(None, None, None)
        return QualityResult(0, dict.fromkeys(METRICS, empty), {})
    rng = np.random.default_rng(seed)
    points = {"auc": auc(y, s), "logloss": log_loss(y, s), "brier": brier(y, s)}
    by, bs = _cap(y, s, rng, max_rows)
    samples = bootstrap_metrics(by, bs, resamples=resamples, rng=rng)
    return QualityResult(
        len(y), {name: _interval(points[name], samples[name], level) for name in METRICS}, samples
    )


def difference(
    challenger: QualityResult, baseline: QualityResult, *, level: float = 0.95
) -> dict[str, Interval]:
    """Challenger minus baseline per metric, with a bootstrap interval of the difference.

    Both results must come from the same number of resamples (independent draws).
    """
    result: dict[str, Interval] = {}
    for name in METRICS:
        a, b = challenger.metrics[name].value, baseline.metrics[name].value
        if a is None or b is None or name not in challenger.samples or name not in baseline.samples:
            result[name] = Interval(None, None, None)
            continue
        result[name] = _interval(a - b, challenger.samples[name] - baseline.samples[name], level)
    return result


def distribution(scores: Sequence[float] | Array) -> dict[str, object]:
    """Count, mean, quantiles and a 10-bin histogram (over [0, 1] for probabilities)."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if not len(s):
        return {"count": 0, "mean": None, "quantiles": {}, "histogram": None}
    low, high = (
        (0.0, 1.0) if s.min() >= 0.0 and s.max() <= 1.0 else (float(s.min()), float(s.max()))
    )
    counts, edges = np.histogram(s, bins=HISTOGRAM_BINS, range=(low, high or low + 1.0))
    return {
        "count": len(s),
        "mean": float(s.mean()),
        "quantiles": {
            f"p{round(q * 100)}": float(v)
            for q, v in zip(QUANTILES, np.quantile(s, QUANTILES), strict=True)
        },
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }
