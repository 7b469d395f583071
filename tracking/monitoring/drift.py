"""Pure statistics for drift: a training profile, PSI and the KS statistic against it.

A profile summarises one column of the training data (or the validation scores):

- ``edges``: inner bin edges at the training deciles (duplicates removed, so a count feature
  with many zeros gets fewer, wider bins); bins are right-closed: ``(-inf, e1], ..., (ek, inf)``;
- ``fractions``: the training share of non-null values in each bin (not assumed 10 %: ties);
- ``cdf_points`` / ``cdf``: the training CDF at its percentiles, for the KS statistic;
- ``null_rate`` and ``count``.

PSI compares bin shares, ``sum((live - train) * ln(live / train))``, each share floored at
``EPSILON`` so an empty bin costs a large but finite amount. The KS statistic is the largest
difference between the live and training CDFs over the profile's percentile points: the
profile keeps no raw training rows, so this is the exact KS statistic evaluated at up to 101
points (a close lower bound of the one over every value).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

PROFILE_FORMAT = 1
BINS = 10
EPSILON = 1e-4
PSI_ALERT = 0.2
PSI_WATCH = 0.1
#: Live rows below this make PSI and KS noisy; the report says so.
MIN_ROWS = 100
_PERCENTILES = np.linspace(0.0, 1.0, 101)

Column = Sequence[float | None] | NDArray[Any]


def _values(column: Column | Iterable[Any]) -> tuple[NDArray[np.float64], int]:
    """Finite values as floats, and the number of nulls (None, NaN, non-numbers)."""
    raw = list(column)
    values = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, int | float | np.number):
            continue
        number = float(item)
        if math.isfinite(number):
            values.append(number)
    return np.asarray(values, dtype=float), len(raw) - len(values)


def column_profile(column: Column | Iterable[Any], bins: int = BINS) -> dict[str, Any]:
    """The profile of one column (see the module docstring)."""
    values, nulls = _values(column)
    total = len(values) + nulls
    if not len(values):
        return {"count": total, "null_rate": 1.0 if total else 0.0, "edges": [],
                "fractions": [1.0], "cdf_points": [], "cdf": []}  # fmt: skip
    inner = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(inner)
    points = np.unique(np.quantile(values, _PERCENTILES))
    ordered = np.sort(values)
    cdf = np.searchsorted(ordered, points, side="right") / len(values)
    return {
        "count": total,
        "null_rate": nulls / total,
        "edges": [float(e) for e in edges],
        "fractions": [float(f) for f in _shares(values, edges)],
        "cdf_points": [float(p) for p in points],
        "cdf": [float(c) for c in cdf],
    }


def build_profile(
    columns: Mapping[str, Column], scores: Column | None = None, *, bins: int = BINS
) -> dict[str, Any]:
    """A training profile: one column profile per feature, and the validation scores'."""
    return {
        "format": PROFILE_FORMAT,
        "bins": bins,
        "features": {name: column_profile(values, bins) for name, values in columns.items()},
        "score": None if scores is None else column_profile(scores, bins),
    }


def _shares(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    index = np.searchsorted(edges, values, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(float)
    return counts / max(len(values), 1)


def psi(expected: Column, actual: Column, epsilon: float = EPSILON) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=float), epsilon)
    a = np.maximum(np.asarray(actual, dtype=float), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(profile: Mapping[str, Any], values: NDArray[np.float64]) -> float | None:
    """Largest CDF difference between ``values`` and the profile, at its percentile points."""
    points = np.asarray(profile.get("cdf_points") or [], dtype=float)
    if not len(points) or not len(values):
        return None
    train = np.asarray(profile["cdf"], dtype=float)
    live = np.searchsorted(np.sort(values), points, side="right") / len(values)
    return float(np.max(np.abs(live - train)))


def compare_column(profile: Mapping[str, Any], column: Column | Iterable[Any]) -> dict[str, Any]:
    """PSI, KS and null rates of live values against one column profile; flags PSI > 0.2."""
    values, nulls = _values(column)
    total = len(values) + nulls
    edges = np.asarray(profile.get("edges") or [], dtype=float)
    result: dict[str, Any] = {
        "rows": total,
        "null_rate": nulls / total if total else None,
        "train_null_rate": profile.get("null_rate"),
        "psi": None,
        "ks": None,
        "drift": False,
        "level": "no_data",
    }
    if not len(values):
        return result
    value = psi(profile["fractions"], _shares(values, edges))
    result["psi"] = value
    result["ks"] = ks_statistic(profile, values)
    result["drift"] = value > PSI_ALERT
    result["level"] = "drift" if value > PSI_ALERT else "watch" if value > PSI_WATCH else "stable"
    return result


def compare(
    profile: Mapping[str, Any],
    *,
    scores: Column | None,
    features: Mapping[str, Column] | None,
) -> dict[str, Any]:
    """The score's and each profiled feature's drift (features only when given)."""
    feature_profiles: Mapping[str, Any] = profile.get("features") or {}
    score_profile = profile.get("score")
    return {
        "score": None
        if score_profile is None or scores is None
        else compare_column(score_profile, scores),
        "features": None
        if features is None
        else {
            name: compare_column(spec, features.get(name, ()))
            for name, spec in feature_profiles.items()
            if name in features
        },
    }
