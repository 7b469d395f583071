"""Train, convert to ONNX, evaluate, log and register the churn baseline.

    python -m models.churn_baseline.train [--rows 20000] [--c 1.0] [--seed 42]
                                          [--promote staging|production]

The run goes to churn's experiment with churn's metric names (``test_auc``, ``test_logloss``,
``test_precision`` ...) and the tag ``model_type``, so the tracker compares it with the XGBoost
runs (``python -m models.churn.compare``). Metrics are computed on the ONNX model's outputs, the
ones served; ``onnx_max_abs_diff`` is the largest gap between scikit-learn's and onnxruntime's
validation probabilities, and training fails when it exceeds ``PARITY_TOLERANCE``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import skl2onnx
import sklearn
import typer
from skl2onnx.common.data_types import FloatTensorType
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.churn import EXPERIMENT_NAME
from models.churn.data import PlayerData
from models.churn.evaluation import RiskThresholds, choose_thresholds, roc_auc
from models.churn.features import FEATURE_NAMES
from models.churn.train import (
    DATA_DIR,
    RowsOption,
    SeedOption,
    Splits,
    echo_registered,
    log_report,
    prepare_data,
    register_churn,
    start_logging,
    test_metrics_at,
)
from models.churn_baseline import MODEL_NAME, MODEL_TYPE
from models.onnx_tabular import FEATURE_NAMES_KEY
from models.training import PromoteOption, cli_errors, registry_for, stage_value
from tracking import ExperimentLogger, ModelRegistry, ModelVersion
from tracking.flavors import load_onnx

#: Largest |sklearn - onnxruntime| probability allowed on the validation set (float32 inputs).
PARITY_TOLERANCE = 1e-5
#: The opsets the graph is written for: every onnxruntime since 1.14 runs them.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
INPUT_NAME = "features"


class ParityError(RuntimeError):
    """The converted model's probabilities differ from scikit-learn's."""


@dataclass(frozen=True)
class BaselineConfig:
    rows: int = 20_000
    c: float = 1.0
    max_iter: int = 1_000
    seed: int = 42
    experiment: str = EXPERIMENT_NAME
    model_name: str = MODEL_NAME

    def params(self) -> dict[str, Any]:
        return {
            "model": "logistic_regression",
            "C": self.c,
            "max_iter": self.max_iter,
            "imputer": "median",
            "scaler": "standard",
            "seed": self.seed,
            "rows": self.rows,
            "target_opset": json.dumps(TARGET_OPSET, sort_keys=True),
        }


@dataclass
class BaselineResult:
    run_id: str
    test_metrics: dict[str, float]
    validation_auc: float
    thresholds: RiskThresholds
    onnx_max_abs_diff: float
    seconds: float
    version: ModelVersion | None = None


def fit(train: PlayerData, config: BaselineConfig) -> Pipeline:
    """The scikit-learn pipeline, fitted; NaN (a missing optional feature) is imputed."""
    pipeline = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=config.c, max_iter=config.max_iter)),
        ]
    )
    pipeline.fit(train.features, train.churned)
    return pipeline


def to_onnx(pipeline: Pipeline) -> bytes:
    """The pipeline as ONNX bytes: one float input ``[rows, 10]`` in ``FEATURE_NAMES`` order,
    probabilities as a tensor (no ZipMap), the column names in the model's metadata."""
    model = skl2onnx.convert_sklearn(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(pipeline.named_steps["classify"]): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    entry = model.metadata_props.add()
    entry.key, entry.value = FEATURE_NAMES_KEY, json.dumps(list(FEATURE_NAMES))
    raw: bytes = model.SerializeToString()
    return raw


def onnx_probabilities(raw: bytes, features: np.ndarray) -> np.ndarray:
    """Positive-class probabilities from onnxruntime, as the server computes them."""
    session = load_onnx(raw)
    [probabilities] = session.run(["probabilities"], {INPUT_NAME: features.astype(np.float32)})
    return np.asarray(probabilities[:, 1], dtype=np.float64)


def parity(pipeline: Pipeline, raw: bytes, features: np.ndarray) -> float:
    """Max |scikit-learn - onnxruntime| probability on ``features``.

    Raises:
        ParityError: it exceeds ``PARITY_TOLERANCE``.
    """
    expected = pipeline.predict_proba(features)[:, 1]
    difference = float(np.max(np.abs(onnx_probabilities(raw, features) - expected)))
    if not difference <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX probabilities differ from scikit-learn's by {difference:.2e} "
            f"(tolerance {PARITY_TOLERANCE:.0e})"
        )
    return difference


def train_baseline(
    logger: ExperimentLogger, config: BaselineConfig, splits: Splits
) -> BaselineResult:
    """Fit, convert, check parity and evaluate in one run of churn's experiment."""
    started = time.perf_counter()
    with (
        logger.start_run(config.experiment, run_name=f"logreg-c{config.c:g}") as run,
        tempfile.TemporaryDirectory(prefix="churn-baseline-") as tmp,
    ):
        folder = Path(tmp)
        tags = {
            "model": config.model_name,
            "model_type": MODEL_TYPE,
            "framework": f"scikit-learn-{sklearn.__version__}",
            "converter": f"skl2onnx-{skl2onnx.__version__}",
        }
        start_logging(run, config.params(), tags, splits)
        pipeline = fit(splits.train, config)
        raw = to_onnx(pipeline)
        difference = parity(pipeline, raw, splits.validation.features)

        validation_scores = onnx_probabilities(raw, splits.validation.features)
        validation_auc = roc_auc(splits.validation.churned, validation_scores)
        thresholds = choose_thresholds(splits.validation.churned, validation_scores)
        labels = splits.test.churned
        scores = onnx_probabilities(raw, splits.test.features)
        test_metrics = test_metrics_at(labels, scores, thresholds)
        # validation_best_auc: churn's name for the validation AUC (one "iteration" here).
        run.log_metrics(
            {**test_metrics, "validation_best_auc": validation_auc, "onnx_max_abs_diff": difference}
        )

        model_path = folder / "model.onnx"
        model_path.write_bytes(raw)
        run.log_artifact(model_path, name="model")
        # Standardised inputs: a coefficient's size is the feature's weight in the logit.
        coefficients = pipeline.named_steps["classify"].coef_[0]
        weights = {name: abs(float(w)) for name, w in zip(FEATURE_NAMES, coefficients, strict=True)}
        log_report(run, folder, labels, scores, test_metrics, weights)
        seconds = time.perf_counter() - started
        run.log_metric("train_seconds", seconds)
    return BaselineResult(
        run_id=run.run_id,
        test_metrics=test_metrics,
        validation_auc=validation_auc,
        thresholds=thresholds,
        onnx_max_abs_diff=difference,
        seconds=seconds,
    )


def register(
    registry: ModelRegistry, config: BaselineConfig, result: BaselineResult, promote: str | None
) -> ModelVersion:
    """Register the run's ONNX model with churn's signature and its thresholds."""
    return register_churn(
        registry,
        config.model_name,
        result,
        flavor="onnx",
        description="Logistic-regression churn baseline (ONNX)",
        tags={"model_type": MODEL_TYPE},
        promote=promote,
        trained_by="models.churn_baseline.train",
        extra_metadata={"onnx_max_abs_diff": result.onnx_max_abs_diff},
    )


def run_training(
    config: BaselineConfig,
    *,
    promote: str | None = None,
    logger: ExperimentLogger | None = None,
    registry: ModelRegistry | None = None,
    data_dir: Path = DATA_DIR,
) -> BaselineResult:
    """Train, register and optionally promote the baseline."""
    logger = logger or ExperimentLogger()
    registry = registry_for(logger, registry)
    splits = prepare_data(config.rows, config.seed, data_dir)
    result = train_baseline(logger, config, splits)
    result.version = register(registry, config, result, promote)
    return result


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    rows: RowsOption = 20_000,
    c: Annotated[float, typer.Option("--c", min=1e-6, max=1e6, help="Inverse L2 strength.")] = 1.0,
    max_iter: Annotated[int, typer.Option(min=10, max=100_000)] = 1_000,
    seed: SeedOption = 42,
    promote: PromoteOption = None,
) -> None:
    """Train the logistic churn baseline, convert it to ONNX, track and register it."""
    config = BaselineConfig(rows=rows, c=c, max_iter=max_iter, seed=seed)
    with cli_errors(ParityError):
        result = run_training(config, promote=stage_value(promote))
    echo_registered(
        result.run_id,
        result.test_metrics,
        result.version,
        f"ONNX parity {result.onnx_max_abs_diff:.1e}; trained in {result.seconds:.1f} s",
    )


if __name__ == "__main__":
    app()
