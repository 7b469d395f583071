"""PSI and KS against a training profile: shifted data is flagged, unshifted data stays quiet."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tracking.monitoring import drift


@pytest.fixture
def training() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "playtime": rng.normal(100.0, 20.0, 20_000),
        "purchases": rng.poisson(0.7, 20_000).astype(float),  # mostly zeros: tied deciles
    }


def test_unshifted_live_data_is_quiet(training: dict[str, np.ndarray]) -> None:
    profile = drift.build_profile(training)
    rng = np.random.default_rng(12)
    live = {"playtime": rng.normal(100.0, 20.0, 5000), "purchases": rng.poisson(0.7, 5000)}
    for name, values in live.items():
        found = drift.compare_column(profile["features"][name], values)
        assert found["psi"] < 0.1, name
        assert found["ks"] < 0.05, name
        assert found["drift"] is False
        assert found["level"] == "stable"


def test_shifted_live_data_is_flagged(training: dict[str, np.ndarray]) -> None:
    profile = drift.build_profile(training)
    rng = np.random.default_rng(13)
    shifted = drift.compare_column(profile["features"]["playtime"], rng.normal(120.0, 20.0, 5000))
    assert shifted["psi"] > 0.2
    assert shifted["ks"] > 0.3  # the exact KS of a one-sigma shift is 0.383
    assert shifted["drift"] is True
    more_buyers = drift.compare_column(profile["features"]["purchases"], rng.poisson(2.0, 5000))
    assert more_buyers["psi"] > 0.2
    assert more_buyers["drift"] is True


def test_ties_give_fewer_bins_with_their_real_shares(training: dict[str, np.ndarray]) -> None:
    column = drift.column_profile(training["purchases"])
    assert len(column["edges"]) < 9
    assert sum(column["fractions"]) == pytest.approx(1.0)
    # P(Poisson(0.7) = 0) = 0.4966: the first bin holds the zeros, not 10 %.
    assert column["fractions"][0] == pytest.approx(0.4966, abs=0.02)


def test_empty_bins_cost_a_finite_amount() -> None:
    value = drift.psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5])
    assert np.isfinite(value)
    assert value > 1.0


def test_nulls_are_counted_apart_from_the_bins() -> None:
    column = drift.column_profile([1.0, None, float("nan"), 2.0])
    assert column["null_rate"] == 0.5
    live = drift.compare_column(column, [None, None, 1.0, 2.0])
    assert live["null_rate"] == 0.5
    assert drift.compare_column(column, [None])["level"] == "no_data"


def test_the_profile_is_json_and_compare_uses_only_the_given_features(
    training: dict[str, np.ndarray],
) -> None:
    rng = np.random.default_rng(14)
    profile = json.loads(json.dumps(drift.build_profile(training, scores=rng.random(4000))))
    found = drift.compare(profile, scores=rng.random(2000), features=None)
    assert found["features"] is None
    assert found["score"]["psi"] < 0.1
    shifted = drift.compare(profile, scores=rng.random(2000) ** 3, features={"playtime": [100.0]})
    assert shifted["score"]["drift"] is True
    assert set(shifted["features"]) == {"playtime"}
