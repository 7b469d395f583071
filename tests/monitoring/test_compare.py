"""Variant statistics on synthetic data with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tracking.monitoring import compare


def _brute_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_perfect_scorer_has_auc_one_and_a_reversed_one_zero() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.7])
    assert compare.auc(labels, scores) == 1.0
    assert compare.auc(labels, 1 - scores) == 0.0


def test_auc_matches_pair_counting_with_ties() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 1)  # many ties
    assert compare.auc(labels, scores) == pytest.approx(_brute_auc(labels, scores), abs=1e-12)


def test_auc_needs_both_classes() -> None:
    assert compare.auc([1, 1], [0.2, 0.3]) is None


def test_random_scores_have_auc_near_half_and_the_interval_covers_it() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 4000)
    result = compare.quality(labels, rng.random(4000), resamples=400)
    interval = result.metrics["auc"]
    assert interval.value == pytest.approx(0.5, abs=0.03)
    assert interval.low is not None
    assert interval.high is not None
    assert interval.low < 0.5 < interval.high
    assert interval.high - interval.low < 0.06


def test_logloss_and_brier_of_known_predictions() -> None:
    assert compare.brier([1, 0], [0.5, 0.5]) == pytest.approx(0.25)
    assert compare.log_loss([1, 0], [0.5, 0.5]) == pytest.approx(np.log(2))


def test_interval_covers_the_true_auc_of_a_known_model() -> None:
    # Scores ~ N(1, 1) for positives and N(0, 1) for negatives: AUC = Phi(1 / sqrt 2) = 0.7602.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 3000)
    scores = rng.normal(labels.astype(float), 1.0)
    probabilities = 1 / (1 + np.exp(-scores))
    interval = compare.quality(labels, probabilities, resamples=500).metrics["auc"]
    assert interval.low is not None
    assert interval.high is not None
    assert interval.low < 0.7602 < interval.high


def test_the_difference_of_a_better_challenger_is_positive_and_its_interval_excludes_zero() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 3000)
    good = 1 / (1 + np.exp(-rng.normal(2.0 * labels, 1.0)))
    weak = 1 / (1 + np.exp(-rng.normal(0.5 * labels, 1.0)))
    challenger = compare.quality(labels, good, resamples=300)
    baseline = compare.quality(labels, weak, resamples=300)
    diff = compare.difference(challenger, baseline)["auc"]
    assert diff.value is not None
    assert diff.low is not None
    assert diff.value > 0.2
    assert diff.low > 0.0


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(5)
    labels, scores = rng.integers(0, 2, 500), rng.random(500)
    first = compare.quality(labels, scores, resamples=100, seed=7).metrics
    second = compare.quality(labels, scores, resamples=100, seed=7).metrics
    assert first == second


def test_rows_over_the_cap_are_subsampled_for_the_bootstrap_only() -> None:
    rng = np.random.default_rng(6)
    labels, scores = rng.integers(0, 2, 2000), rng.random(2000)
    result = compare.quality(labels, scores, resamples=50, max_rows=500)
    assert result.rows == 2000
    assert result.metrics["brier"].value == pytest.approx(compare.brier(labels, scores))


def test_distribution_quantiles_and_histogram() -> None:
    scores = np.linspace(0.0, 1.0, 101)
    found = compare.distribution(scores)
    assert found["count"] == 101
    assert found["quantiles"]["p50"] == pytest.approx(0.5)  # type: ignore[index]
    assert sum(found["histogram"]["counts"]) == 101  # type: ignore[index]
    assert compare.distribution([])["count"] == 0
