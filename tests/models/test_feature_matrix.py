"""``models.tabular.feature_matrix``: the float32 matrix every tabular predictor scores."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from models.churn.features import FEATURE_NAMES, ChurnFeatures
from models.tabular import feature_matrix


def _reference(rows: list[object], names: tuple[str, ...]) -> np.ndarray:
    return np.array(
        [[math.nan if getattr(r, n, None) is None else float(getattr(r, n)) for n in names]
         for r in rows],
        dtype=np.float32,
    )  # fmt: skip


@pytest.mark.parametrize(
    "rows",
    [
        [SimpleNamespace(a=1, b=2.5, c=True), SimpleNamespace(a=-3, b=1e-9, c=False)],
        # None and a missing attribute are NaN (the per-value path)
        [SimpleNamespace(a=1.0, b=None, c=0.1), SimpleNamespace(a=2.0, c=0.2)],
        # values float32 cannot hold exactly are rounded as numpy rounds them
        [SimpleNamespace(a=0.1, b=1 / 3, c=1e30)],
    ],
)
def test_the_matrix_holds_each_rows_values_in_column_order(rows: list[object]) -> None:
    names = ("c", "a", "b")
    matrix = feature_matrix(rows, names)
    assert matrix.dtype == np.float32
    assert matrix.shape == (len(rows), 3)
    np.testing.assert_array_equal(matrix, _reference(rows, names))


def test_one_column_is_a_matrix_of_one_column() -> None:
    matrix = feature_matrix([SimpleNamespace(x=1.5), SimpleNamespace(x=None)], ("x",))
    assert matrix.shape == (2, 1)
    assert matrix[0, 0] == 1.5
    assert math.isnan(matrix[1, 0])


def test_churn_rows_read_the_features_of_the_model() -> None:
    rows = [ChurnFeatures(player_id=f"p{i}", sessions_7d=i, playtime_7d=1.5, iap_count=0,
                          level=None if i else 3) for i in range(4)]  # fmt: skip
    np.testing.assert_array_equal(
        feature_matrix(rows, FEATURE_NAMES), _reference(list(rows), tuple(FEATURE_NAMES))
    )
