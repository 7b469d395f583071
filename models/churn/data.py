"""Deterministic synthetic player activity for a mobile game, with a churn label.

Each player has a latent engagement level. From it come sessions (Poisson, with a personal trend
between the previous and the last week), session length (log-normal, so playtime is heavy-tailed),
friends, level, and purchases (zero-inflated: most players never pay). Churn is drawn from a
nonlinear process of recency, the trend, depth of play and social ties, plus noise, so no single
feature gives it away. Some optional fields are missing, as they are in real telemetry.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.churn.features import FEATURE_NAMES, REQUIRED_FEATURES

#: Fraction of rows where each optional feature is missing.
MISSING_RATE = {
    "days_since_install": 0.03,
    "sessions_prev_7d": 0.08,
    "avg_session_minutes": 0.05,
    "friends_count": 0.12,
    "level": 0.04,
    "iap_spend_30d": 0.10,
    "days_since_last_login": 0.06,
}


@dataclass(frozen=True)
class PlayerData:
    player_ids: list[str]
    features: np.ndarray  # rows x FEATURE_NAMES, NaN where missing
    churned: np.ndarray  # 0/1

    def __len__(self) -> int:
        return len(self.player_ids)

    def subset(self, index: np.ndarray) -> PlayerData:
        return PlayerData(
            [self.player_ids[i] for i in index], self.features[index], self.churned[index]
        )


def generate(rows: int, seed: int) -> PlayerData:
    """Generate ``rows`` players; the same seed always gives the same data."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    rng = np.random.default_rng(seed)
    engagement = rng.normal(0.0, 1.0, rows)
    days_since_install = np.minimum(rng.lognormal(4.0, 1.2, rows).astype(int) + 1, 3000)
    newcomer = days_since_install < 14

    base_rate = np.exp(1.3 + 0.7 * engagement)
    sessions_prev = rng.poisson(base_rate * np.where(newcomer, 1.4, 1.0))
    trend = rng.normal(-0.15, 0.45, rows) + 0.15 * engagement
    sessions = rng.poisson(base_rate * np.exp(trend))

    avg_minutes = np.minimum(rng.lognormal(2.6 + 0.25 * engagement, 0.6, rows), 300.0)
    playtime = np.minimum(sessions * avg_minutes * rng.lognormal(0.0, 0.25, rows), 10_080.0)
    friends = rng.negative_binomial(1.2, 1 / (1 + np.exp(1.0 + 0.6 * engagement)), rows)
    level = np.minimum(
        (
            np.sqrt(days_since_install) * np.exp(0.4 * engagement) * rng.lognormal(0.5, 0.3, rows)
        ).astype(int)
        + 1,
        500,
    )
    payer = rng.random(rows) < 1 / (1 + np.exp(-(-2.2 + 0.9 * engagement)))
    iap_count = np.where(payer, rng.poisson(0.8 + 0.5 * np.exp(0.3 * engagement), rows), 0)
    iap_spend = np.where(payer, np.round(rng.lognormal(2.0, 1.1, rows), 2), 0.0)
    days_since_last_login = np.where(
        sessions > 0,
        rng.integers(0, 4, rows) + (sessions < 2) * rng.integers(0, 4, rows),
        7 + rng.geometric(0.15, rows),
    )

    drop = np.log1p(sessions_prev) - np.log1p(sessions)
    logit = (
        -0.4
        - 0.9 * np.log1p(sessions)
        + 0.9 * np.clip(drop, -1.5, 3.0)
        + 0.12 * np.minimum(days_since_last_login, 30)
        - 0.6 * payer
        - 0.35 * np.log1p(friends)
        + 0.8 * newcomer
        - 0.2 * np.log1p(avg_minutes) * (sessions > 0)
        + 0.5 * ((level < 5) & ~newcomer)
        + rng.normal(0.0, 0.6, rows)
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)

    columns = {
        "sessions_7d": sessions,
        "playtime_7d": np.round(playtime, 1),
        "iap_count": iap_count,
        "days_since_install": days_since_install,
        "sessions_prev_7d": sessions_prev,
        "avg_session_minutes": np.round(avg_minutes, 1),
        "friends_count": friends,
        "level": level,
        "iap_spend_30d": iap_spend,
        "days_since_last_login": days_since_last_login,
    }
    features = np.column_stack([columns[name].astype(float) for name in FEATURE_NAMES])
    for index, name in enumerate(FEATURE_NAMES):
        if name in REQUIRED_FEATURES:
            continue
        features[rng.random(rows) < MISSING_RATE[name], index] = np.nan
    player_ids = [f"p_{seed}_{i:07d}" for i in range(rows)]
    return PlayerData(player_ids, features, churned)


def split(
    data: PlayerData, seed: int, fractions: tuple[float, float] = (0.7, 0.15)
) -> tuple[PlayerData, PlayerData, PlayerData]:
    """Shuffle and split into train / validation / test (the rest)."""
    order = np.random.default_rng(seed + 1).permutation(len(data))
    train_end = int(len(data) * fractions[0])
    validation_end = train_end + int(len(data) * fractions[1])
    return (
        data.subset(order[:train_end]),
        data.subset(order[train_end:validation_end]),
        data.subset(order[validation_end:]),
    )


def write_csv(data: PlayerData, path: Path) -> str:
    """Write the players as CSV (empty cells for missing values); return the file's SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["player_id", *FEATURE_NAMES, "churned"])
        for player_id, row, label in zip(data.player_ids, data.features, data.churned, strict=True):
            cells = ["" if np.isnan(v) else (f"{v:g}") for v in row]
            writer.writerow([player_id, *cells, int(label)])
    return hashlib.sha256(path.read_bytes()).hexdigest()
