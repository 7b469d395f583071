"""``models.xgboost_dense``: the direct C-API call answers exactly what inplace_predict does."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from models.churn.features import FEATURE_NAMES
from models.churn.predictor import WARM_UP_ROW, ChurnPredictor
from models.tabular import TabularPredictor, feature_matrix
from models.xgboost_dense import DenseBooster, dense_booster
from tests.models_fixtures import FEATURES, train_booster
from tracking import ModelVersion
from tracking.entities import FeatureSpec


def _booster(objective: str, **params: Any) -> xgb.Booster:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = {
        "binary:logistic": (x[:, 0] > 0).astype(float),
        "reg:squarederror": x[:, 1] * 3 + x[:, 2],
        "multi:softprob": np.digitize(x[:, 0], [-0.5, 0.5]).astype(float),
    }[objective]
    booster = xgb.train(
        {"objective": objective, "max_depth": 3, "seed": 1, "nthread": 1, **params},
        xgb.DMatrix(x, label=y),
        8,
    )
    booster.set_param({"nthread": 1})
    return booster


def _matrix(rows: int, seed: int = 0, columns: int = 4) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(rows, columns)).astype(np.float32)
    matrix[::3, 1] = np.nan  # missing values take the trees' default branches
    return matrix


@pytest.mark.parametrize(
    ("objective", "params"),
    [("binary:logistic", {}), ("reg:squarederror", {}), ("multi:softprob", {"num_class": 3})],
)
@pytest.mark.parametrize("rows", [1, 2, 100, 1000])
def test_the_same_answers_and_shape_as_inplace_predict(
    objective: str, params: dict[str, Any], rows: int
) -> None:
    booster = _booster(objective, **params)
    dense = dense_booster(booster)
    assert isinstance(dense, DenseBooster)
    matrix = _matrix(rows, seed=rows)
    expected = booster.inplace_predict(matrix)
    got = dense.inplace_predict(matrix)
    assert got.dtype == expected.dtype == np.float32
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    # Called again (the thread's proxy is reused) with other rows, then with another number of
    # rows: nothing of the previous call is left in the proxy.
    for other in (_matrix(rows, seed=rows + 1), _matrix(rows + 7, seed=rows + 2), matrix[:1]):
        assert np.array_equal(dense.inplace_predict(other), booster.inplace_predict(other))


def test_the_answer_is_a_copy_not_the_librarys_buffer() -> None:
    dense = dense_booster(_booster("binary:logistic"))
    first = dense.inplace_predict(_matrix(5, seed=1))
    kept = first.copy()
    dense.inplace_predict(_matrix(5, seed=2))  # the library reuses its buffer for this one
    assert np.array_equal(first, kept)
    assert first.flags.owndata


@pytest.mark.parametrize(
    "matrix",
    [
        _matrix(4).astype(np.float64),  # another dtype
        np.asfortranarray(_matrix(4)),  # not C-contiguous
        _matrix(8)[::2],  # a strided view
        _matrix(0),  # no rows
    ],
    ids=["float64", "fortran", "strided", "empty"],
)
def test_other_inputs_go_to_inplace_predict_and_agree(matrix: np.ndarray) -> None:
    booster = _booster("binary:logistic")
    got = dense_booster(booster).inplace_predict(matrix)
    expected = booster.inplace_predict(matrix)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_options_are_passed_to_inplace_predict() -> None:
    booster = _booster("binary:logistic")
    matrix = _matrix(6)
    margin = dense_booster(booster).inplace_predict(matrix, predict_type="margin")
    assert np.array_equal(margin, booster.inplace_predict(matrix, predict_type="margin"))
    assert not np.array_equal(margin, booster.inplace_predict(matrix))  # really the margin


def test_a_wrong_column_count_is_the_same_error_as_inplace_predict() -> None:
    booster = _booster("binary:logistic")
    matrix = _matrix(3, columns=5)
    with pytest.raises(ValueError, match="Feature shape mismatch") as expected:
        booster.inplace_predict(matrix)
    with pytest.raises(ValueError, match="Feature shape mismatch") as got:
        dense_booster(booster).inplace_predict(matrix)
    assert str(got.value) == str(expected.value)


def test_threads_each_get_their_own_answers() -> None:
    booster = _booster("reg:squarederror")
    dense = dense_booster(booster)
    matrices = [_matrix(50, seed=seed) for seed in range(4)]
    expected = [booster.inplace_predict(matrix) for matrix in matrices]
    failures: list[int] = []

    def work(index: int) -> None:
        for _ in range(200):
            if not np.array_equal(dense.inplace_predict(matrices[index]), expected[index]):
                failures.append(index)
                return

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_anything_but_a_booster_is_returned_as_it_is() -> None:
    onnx_like = SimpleNamespace(inplace_predict=lambda matrix: matrix[:, 0])
    assert dense_booster(onnx_like) is onnx_like
    assert dense_booster(None) is None


def test_without_the_c_functions_the_booster_is_served_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another xgboost release without these private names: plain inplace_predict, no error."""
    from xgboost import core

    booster = _booster("binary:logistic")  # outlives the patches: its __del__ needs _LIB
    with monkeypatch.context() as patch:
        patch.delattr(core, "_check_call")
        assert dense_booster(booster) is booster
    with monkeypatch.context() as patch:
        patch.setattr(core, "_LIB", SimpleNamespace())
        assert dense_booster(booster) is booster
    assert isinstance(dense_booster(booster), DenseBooster)


def test_the_booster_s_own_attributes_are_reachable() -> None:
    booster = train_booster()
    dense = dense_booster(booster)
    assert dense.feature_names == FEATURES
    assert dense.num_features() == len(FEATURES)
    assert dense.save_raw("json") == booster.save_raw("json")
    with pytest.raises(AttributeError):
        dense.no_such_attribute  # noqa: B018


def test_the_served_predictors_use_it_and_answer_as_the_booster_does() -> None:
    tabular_booster = train_booster()
    version = ModelVersion.model_construct(
        name="generic", version=1,
        signature=[FeatureSpec(name=column, type="float") for column in FEATURES],
    )  # fmt: skip
    tabular = TabularPredictor.from_version(version, tabular_booster)
    assert isinstance(tabular.model, DenseBooster)
    rows = [SimpleNamespace(sessions_7d=s, playtime_7d=s * 2.5, iap_count=None) for s in range(5)]
    matrix = np.asarray([[r.sessions_7d, r.playtime_7d, np.nan] for r in rows], dtype=np.float32)
    expected = tabular_booster.inplace_predict(matrix).tolist()
    assert [r["prediction"] for r in tabular.predict_records(rows)] == expected

    churn_booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "seed": 0},
        xgb.DMatrix(_matrix(200, columns=len(FEATURE_NAMES)), label=np.arange(200) % 2),
        4,
    )
    churn_version = ModelVersion.model_construct(
        name="churn", version=1, metadata={"risk_thresholds": {"medium": 0.3, "high": 0.6}}
    )
    churn = ChurnPredictor.from_version(churn_version, churn_booster)
    assert isinstance(churn.booster, DenseBooster)
    players = [WARM_UP_ROW, WARM_UP_ROW.model_copy(update={"level": 40, "iap_count": 3})]
    got = [record["churn_probability"] for record in churn.predict_records(players)]
    plain = churn_booster.inplace_predict(feature_matrix(players, FEATURE_NAMES)).tolist()
    assert got == [round(value, 6) for value in plain]
