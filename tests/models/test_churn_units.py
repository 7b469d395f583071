"""Churn model pieces: the feature schema, the data generator, metrics and thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from models.churn.data import generate, split, write_csv
from models.churn.evaluation import (
    at_threshold,
    brier,
    calibration_bins,
    choose_thresholds,
    log_loss,
    roc_auc,
)
from models.churn.features import FEATURE_NAMES, ChurnFeatures, signature, to_row

SEED_REQUEST = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}


def test_seed_request_is_valid_and_optional_fields_are_missing() -> None:
    features = ChurnFeatures.model_validate(SEED_REQUEST)
    row = to_row(features)
    assert row[:3] == [4.0, 95.5, 1.0]
    assert all(math.isnan(v) for v in row[3:])
    assert len(row) == len(FEATURE_NAMES) == len(signature()) - 1  # player_id is no column


@pytest.mark.parametrize(
    "change",
    [
        {"player_id": "../etc/passwd"},
        {"player_id": ""},
        {"player_id": "x" * 65},
        {"player_id": "a b"},
        {"sessions_7d": -1},
        {"sessions_7d": 1.5},
        {"sessions_7d": "many"},
        {"playtime_7d": float("nan")},
        {"playtime_7d": float("inf")},
        {"playtime_7d": 1e999},
        {"playtime_7d": 20_000},
        {"iap_count": None},
        {"level": -3},
        {"unknown_feature": 1},
    ],
)
def test_bad_features_are_refused(change: dict) -> None:
    with pytest.raises(ValidationError):
        ChurnFeatures.model_validate(SEED_REQUEST | change)


@pytest.mark.parametrize("missing", ["player_id", "sessions_7d", "playtime_7d", "iap_count"])
def test_required_features(missing: str) -> None:
    body = dict(SEED_REQUEST)
    del body[missing]
    with pytest.raises(ValidationError):
        ChurnFeatures.model_validate(body)


def test_generator_is_deterministic_and_realistic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first, second, other = generate(5000, 7), generate(5000, 7), generate(5000, 8)
    assert np.array_equal(first.features, second.features, equal_nan=True)
    assert np.array_equal(first.churned, second.churned)
    assert not np.array_equal(first.churned, other.churned)
    assert write_csv(first, tmp_path / "a.csv") == write_csv(second, tmp_path / "b.csv")
    columns = dict(zip(FEATURE_NAMES, first.features.T, strict=True))
    assert 0.1 < first.churned.mean() < 0.4
    assert (columns["iap_count"] == 0).mean() > 0.6  # zero-inflated purchases
    playtime = columns["playtime_7d"]
    assert np.percentile(playtime, 99) > 5 * np.median(playtime)  # heavy tail
    assert np.isnan(columns["friends_count"]).mean() > 0.05  # missing optional values
    assert not np.isnan(columns["sessions_7d"]).any()  # required ones never missing
    train, validation, test = split(first, 7)
    assert (len(train), len(validation), len(test)) == (3500, 750, 750)
    assert not set(train.player_ids) & set(test.player_ids)


def test_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = np.round(np.clip(labels * 0.3 + rng.random(400) * 0.7, 0, 1), 2)  # with ties
    positives, negatives = scores[labels == 1], scores[labels == 0]
    pairwise = (
        (positives[:, None] > negatives[None, :]).sum()
        + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    ) / (len(positives) * len(negatives))
    assert roc_auc(labels, scores) == pytest.approx(pairwise)


def test_probability_metrics() -> None:
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert brier(labels, scores) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert log_loss(labels, scores) == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))
    assert at_threshold(labels, scores, 0.35) == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8}
    predicted, observed, counts = calibration_bins(labels, scores, bins=2)
    assert counts.tolist() == [3, 1]
    assert observed.tolist() == pytest.approx([1 / 3, 1.0])
    assert predicted.tolist() == pytest.approx([0.85 / 3, 0.8])


def test_thresholds_are_ordered_and_levels_follow() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    scores = np.clip(labels * 0.4 + rng.random(2000) * 0.6, 0, 1)
    thresholds = choose_thresholds(labels, scores)
    assert 0 < thresholds.medium < thresholds.high <= 1
    assert at_threshold(labels, scores, thresholds.high)["precision"] >= 0.8
    assert thresholds.level(thresholds.medium - 1e-3) == "low"
    assert thresholds.level(thresholds.medium) == "medium"
    assert thresholds.level(thresholds.high) == "high"
