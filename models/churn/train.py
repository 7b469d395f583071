"""Train, evaluate, log and register the churn model.

    python -m models.churn.train [--rows 20000] [--max-depth 5] [--learning-rate 0.1]
                                 [--n-estimators 400] [--seed 42] [--promote staging|production]
                                 [--sweep]

Everything is tracked in the store named by ``TRACKING_URI`` / ``ARTIFACT_URI`` (the embedded
default when unset): params, per-round train and validation logloss/AUC, test metrics, dataset
versions, the model (XGBoost UBJ), the feature schema, plots and a model card. The risk thresholds
are chosen on validation data and stored with the registered version, so serving reads them from
the registry.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
import typer
import xgboost as xgb
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from models.churn import EXPERIMENT_NAME, MODEL_NAME
from models.churn.data import PlayerData, generate, split, write_csv
from models.churn.evaluation import (
    RiskThresholds,
    at_threshold,
    brier,
    choose_thresholds,
    log_loss,
    roc_auc,
)
from models.churn.features import FEATURE_NAMES, FEATURE_TYPES, ChurnFeatures, signature
from models.churn.predictor import ChurnPrediction
from models.churn.profile import PROFILE_TAGS, log_profile
from models.churn.report import (
    model_card,
    plot_calibration,
    plot_feature_importance,
    plot_precision_recall,
    plot_roc,
)
from models.training import PromoteOption, cli_errors, promote_if, registry_for, stage_value
from models.training import Stage as Stage
from tracking import ExperimentLogger, ModelRegistry, ModelVersion, Run

SWEEP_DEPTHS = (3, 5, 7)
SWEEP_RATES = (0.05, 0.1)
DATA_DIR = Path(".tracking/data")
#: The run tag that tells churn's model kinds apart in the tracker (models.churn.compare).
MODEL_TYPE = "xgboost"


@dataclass(frozen=True)
class TrainConfig:
    rows: int = 20_000
    max_depth: int = 5
    learning_rate: float = 0.1
    n_estimators: int = 400
    early_stopping_rounds: int = 30
    seed: int = 42
    experiment: str = EXPERIMENT_NAME
    model_name: str = MODEL_NAME

    def params(self) -> dict[str, Any]:
        return {
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "n_estimators": self.n_estimators,
            "early_stopping_rounds": self.early_stopping_rounds,
            "seed": self.seed,
            "rows": self.rows,
            "objective": "binary:logistic",
            "tree_method": "hist",
        }


@dataclass
class Splits:
    train: PlayerData
    validation: PlayerData
    test: PlayerData
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class TrainResult:
    run_id: str
    test_metrics: dict[str, float]
    validation_auc: float
    thresholds: RiskThresholds
    best_iteration: int
    seconds: float
    version: ModelVersion | None = None


class ChurnRun(Protocol):
    """What registering needs of a churn run's result (``TrainResult``, the baseline's)."""

    run_id: str
    test_metrics: dict[str, float]
    thresholds: RiskThresholds


class _LogRounds(xgb.callback.TrainingCallback):
    """Logs each boosting round's train/validation logloss and AUC as step metrics."""

    def __init__(self, run: Any, progress: Progress | None, task: Any) -> None:
        self.run = run
        self.progress = progress
        self.task = task

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        values = {
            f"{split_name}_{metric}": float(history[-1])
            for split_name, metrics in evals_log.items()
            for metric, history in metrics.items()
        }
        self.run.log_metrics(values, step=epoch)
        if self.progress is not None:
            self.progress.advance(self.task)
        return False


def prepare_data(rows: int, seed: int, folder: Path = DATA_DIR) -> Splits:
    """Generate, split and write the data; the files are the logged dataset versions."""
    train, validation, test = split(generate(rows, seed), seed)
    target = folder / f"churn-rows{rows}-seed{seed}"
    files = {}
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        files[name] = target / f"{name}.csv"
        write_csv(part, files[name])
    return Splits(train, validation, test, files)


def start_logging(run: Run, params: dict[str, Any], tags: dict[str, str], splits: Splits) -> None:
    """Log a churn run's params, tags and dataset versions."""
    run.log_params(params)
    run.set_tags(tags)
    for split_name, path in splits.files.items():
        run.log_dataset(split_name, path)


def test_metrics_at(
    labels: np.ndarray, scores: np.ndarray, thresholds: RiskThresholds
) -> dict[str, float]:
    """Churn's test metrics; precision/recall/F1 at the medium-risk threshold."""
    at_medium = at_threshold(labels, scores, thresholds.medium)
    return {
        "test_auc": roc_auc(labels, scores),
        "test_precision": at_medium["precision"],
        "test_recall": at_medium["recall"],
        "test_f1": at_medium["f1"],
        "test_logloss": log_loss(labels, scores),
        "test_brier": brier(labels, scores),
    }


def log_report(
    run: Run,
    folder: Path,
    labels: np.ndarray,
    scores: np.ndarray,
    test_metrics: dict[str, float],
    importance: dict[str, float],
) -> None:
    """Log the feature schema and the ROC, precision-recall, calibration and importance plots."""
    schema_path = folder / "feature_schema.json"
    schema_path.write_text(json.dumps(ChurnFeatures.model_json_schema(), indent=2))
    run.log_artifact(schema_path, name="feature_schema")
    for artifact_name, path in (
        ("roc", plot_roc(labels, scores, test_metrics["test_auc"], folder / "roc.png")),
        ("precision_recall", plot_precision_recall(labels, scores, folder / "pr.png")),
        ("calibration", plot_calibration(labels, scores, test_metrics["test_brier"],
                                         folder / "calibration.png")),
        ("feature_importance", plot_feature_importance(importance,
                                                       folder / "feature_importance.png")),
    ):  # fmt: skip
        run.log_artifact(path, name=artifact_name)


def register_churn(
    registry: ModelRegistry,
    model_name: str,
    result: ChurnRun,
    *,
    flavor: str,
    description: str,
    tags: dict[str, str],
    promote: str | None,
    trained_by: str,
    extra_metadata: dict[str, Any] | None = None,
) -> ModelVersion:
    """Register a churn run's ``model`` artifact with churn's signatures and its thresholds and
    test metrics in the metadata (serving reads them); optionally promote it."""
    auc = result.test_metrics["test_auc"]
    version = registry.register_model(
        model_name,
        run_id=result.run_id,
        artifact="model",
        flavor=flavor,
        signature=signature(),
        output_signature=ChurnPrediction,
        description=f"{description}, test AUC {auc:.3f}",
        tags=tags,
        metadata={
            "risk_thresholds": result.thresholds.as_dict(),
            "test_metrics": result.test_metrics,
            "feature_names": list(FEATURE_NAMES),
            **(extra_metadata or {}),
        },
    )
    return promote_if(registry, version, promote, f"trained by {trained_by}, test AUC {auc:.3f}")


def echo_registered(
    run_id: str, test_metrics: dict[str, float], version: ModelVersion | None, detail: str
) -> None:
    """The CLI's two result lines: the run's test metrics, then the registered version."""
    assert version is not None
    metrics = ", ".join(f"{k.removeprefix('test_')}={v:.4f}" for k, v in test_metrics.items())
    typer.echo(f"run {run_id}: test {metrics}")
    typer.echo(f"registered {version.name} {version.label} (stage {version.stage.value}); {detail}")


RowsOption = Annotated[int, typer.Option(min=500, max=2_000_000, help="Players to generate.")]
SeedOption = Annotated[int, typer.Option(min=0)]


def _matrix(part: PlayerData) -> xgb.DMatrix:
    return xgb.DMatrix(
        part.features,
        label=part.churned,
        feature_names=list(FEATURE_NAMES),
        feature_types=[FEATURE_TYPES[name] for name in FEATURE_NAMES],
    )


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )


def train_one(
    logger: ExperimentLogger,
    config: TrainConfig,
    splits: Splits,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train one model in its own run, logging everything; return its results."""
    started = time.perf_counter()
    name = run_name or f"xgb-depth{config.max_depth}-lr{config.learning_rate:g}"
    with (
        logger.start_run(config.experiment, run_name=name, parent_run_id=parent_run_id) as run,
        _progress(show_progress) as progress,
        tempfile.TemporaryDirectory(prefix="churn-train-") as tmp,
    ):
        folder = Path(tmp)
        tags = {
            "model": config.model_name,
            "model_type": MODEL_TYPE,
            "framework": f"xgboost-{xgb.__version__}",
        }
        start_logging(run, config.params(), tags, splits)
        dtrain, dvalidation = _matrix(splits.train), _matrix(splits.validation)
        task = progress.add_task(f"boosting {name}", total=config.n_estimators)
        booster = xgb.train(
            {
                "objective": "binary:logistic",
                # The last metric drives early stopping: logloss keeps probabilities calibrated.
                "eval_metric": ["auc", "logloss"],
                "max_depth": config.max_depth,
                "eta": config.learning_rate,
                "tree_method": "hist",
                "seed": config.seed,
                "nthread": 2,
            },
            dtrain,
            num_boost_round=config.n_estimators,
            evals=[(dtrain, "train"), (dvalidation, "validation")],
            early_stopping_rounds=config.early_stopping_rounds,
            callbacks=[_LogRounds(run, progress, task)],
            verbose_eval=False,
        )
        progress.update(task, completed=config.n_estimators)
        best = int(booster.best_iteration)
        # Keep only the rounds up to the best one, so serving never needs an iteration range.
        booster = booster[: best + 1]

        validation_scores = booster.predict(dvalidation)
        validation_auc = roc_auc(splits.validation.churned, validation_scores)
        log_profile(run, splits.train.features, validation_scores, folder)
        thresholds = choose_thresholds(splits.validation.churned, validation_scores)
        labels = splits.test.churned
        scores = booster.predict(_matrix(splits.test))
        test_metrics = test_metrics_at(labels, scores, thresholds)
        run.log_metrics(
            {**test_metrics, "validation_best_auc": validation_auc, "best_iteration": best}
        )

        model_path = folder / "model.ubj"
        booster.save_model(model_path)
        run.log_artifact(model_path, name="model")
        gains = booster.get_score(importance_type="total_gain")
        # Tree boosters give one number per feature (lists are for linear boosters).
        importance = {k: float(v) for k, v in gains.items() if not isinstance(v, list)}
        log_report(run, folder, labels, scores, test_metrics, importance)
        card = folder / "model_card.md"
        card.write_text(
            model_card(
                params=config.params(),
                metrics=test_metrics,
                thresholds=thresholds,
                data_summary={
                    "source": "models.churn.data.generate (synthetic, deterministic)",
                    "rows": config.rows,
                    "train": len(splits.train),
                    "validation": len(splits.validation),
                    "test": len(splits.test),
                    "seed": config.seed,
                    "churn_rate": float(np.mean(np.r_[splits.train.churned, labels])),
                },
                importance=importance,
            )
        )
        run.log_artifact(card, name="model_card")
        seconds = time.perf_counter() - started
        run.log_metric("train_seconds", seconds)
    return TrainResult(
        run_id=run.run_id,
        test_metrics=test_metrics,
        validation_auc=validation_auc,
        thresholds=thresholds,
        best_iteration=best,
        seconds=seconds,
    )


def register(
    registry: ModelRegistry, config: TrainConfig, result: TrainResult, promote: str | None
) -> ModelVersion:
    """Register the run's model with its signature and thresholds; optionally promote it."""
    return register_churn(
        registry,
        config.model_name,
        result,
        flavor="xgboost",
        description="XGBoost churn classifier",
        tags=PROFILE_TAGS,
        promote=promote,
        trained_by="models.churn.train",
    )


def run_training(
    config: TrainConfig,
    *,
    sweep: bool = False,
    promote: str | None = None,
    logger: ExperimentLogger | None = None,
    registry: ModelRegistry | None = None,
    show_progress: bool = True,
    data_dir: Path = DATA_DIR,
) -> TrainResult:
    """Train (or sweep), register the best model and optionally promote it."""
    logger = logger or ExperimentLogger()
    registry = registry_for(logger, registry)
    splits = prepare_data(config.rows, config.seed, data_dir)
    if not sweep:
        result = train_one(logger, config, splits, show_progress=show_progress)
    else:
        trials = [
            TrainConfig(**{**config.__dict__, "max_depth": depth, "learning_rate": rate})
            for depth, rate in itertools.product(SWEEP_DEPTHS, SWEEP_RATES)
        ]
        with logger.start_run(config.experiment, run_name="sweep") as parent:
            grid = {"max_depth": SWEEP_DEPTHS, "learning_rate": SWEEP_RATES}
            parent.log_params({"grid": json.dumps(grid), "rows": config.rows,
                               "seed": config.seed, "trials": len(trials)})  # fmt: skip
            results = []
            with _progress(show_progress) as progress:
                task = progress.add_task("sweep trials", total=len(trials))
                for trial in trials:
                    results.append(
                        train_one(logger, trial, splits, parent_run_id=parent.run_id,
                                  show_progress=False)
                    )  # fmt: skip
                    progress.advance(task)
            best_index = max(range(len(results)), key=lambda i: results[i].validation_auc)
            result, config = results[best_index], trials[best_index]
            parent.log_metrics({"best_validation_auc": result.validation_auc,
                                "best_test_auc": result.test_metrics["test_auc"]})  # fmt: skip
            parent.set_tags({"best_run_id": result.run_id})
    result.version = register(registry, config, result, promote)
    return result


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    rows: RowsOption = 20_000,
    max_depth: Annotated[int, typer.Option(min=1, max=16)] = 5,
    learning_rate: Annotated[float, typer.Option(min=0.001, max=1.0)] = 0.1,
    n_estimators: Annotated[int, typer.Option(min=1, max=5000)] = 400,
    early_stopping_rounds: Annotated[int, typer.Option(min=1, max=1000)] = 30,
    seed: SeedOption = 42,
    promote: PromoteOption = None,
    sweep: Annotated[bool, typer.Option(help="Grid-search depth and rate as child runs.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train the churn model, track the run and register the model."""
    config = TrainConfig(
        rows=rows,
        max_depth=max_depth,
        learning_rate=learning_rate,
        n_estimators=n_estimators,
        early_stopping_rounds=early_stopping_rounds,
        seed=seed,
    )
    with cli_errors():
        result = run_training(
            config,
            sweep=sweep,
            promote=stage_value(promote),
            show_progress=progress and sys.stderr.isatty(),
        )
    echo_registered(
        result.run_id,
        result.test_metrics,
        result.version,
        f"thresholds medium={result.thresholds.medium:.4f} high={result.thresholds.high:.4f}; "
        f"trained in {result.seconds:.1f} s",
    )


if __name__ == "__main__":
    app()
