"""Compare churn's model kinds from the tracker: the latest run of each ``model_type``.

    python -m models.churn.compare [--experiment churn]

Reads the runs with ``search_runs`` (``tags.model_type = '...'``, newest first), so it shows what
the tracker holds, not what this process trained: XGBoost (``models.churn.train``) against the
logistic ONNX baseline (``models.churn_baseline.train``), on the same test split.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from models.churn import EXPERIMENT_NAME
from models.churn.train import MODEL_TYPE as XGBOOST
from models.churn_baseline import MODEL_TYPE as BASELINE
from tracking import ExperimentLogger, TrackingError
from tracking.entities import RunRecord

MODEL_TYPES = (XGBOOST, BASELINE)
#: Lower is better for these; higher for the rest.
LOWER_IS_BETTER = frozenset({"test_logloss", "test_brier", "train_seconds"})
METRICS = (
    "test_auc",
    "test_logloss",
    "test_brier",
    "test_precision",
    "test_recall",
    "test_f1",
    "validation_best_auc",
    "train_seconds",
)


def latest_runs(
    logger: ExperimentLogger, experiment: str = EXPERIMENT_NAME
) -> dict[str, RunRecord]:
    """The newest finished run of each model type that has one."""
    found: dict[str, RunRecord] = {}
    for model_type in MODEL_TYPES:
        page = logger.search_runs(
            experiment,
            filter=f"tags.model_type = '{model_type}' and status = 'FINISHED'",
            order_by=["start_time DESC"],
            max_results=1,
        )
        if page.items:
            found[model_type] = page.items[0]
    return found


def table(runs: dict[str, RunRecord]) -> str:
    """A Markdown table: one row per metric, one column per model type, the better one bold."""
    types = [t for t in MODEL_TYPES if t in runs]
    lines = [
        "| metric | " + " | ".join(types) + " |",
        "|---|" + "---:|" * len(types),
    ]
    for metric in METRICS:
        values = {t: runs[t].latest_metrics.get(metric) for t in types}
        known = {t: v for t, v in values.items() if v is not None}
        best = None
        if len(known) > 1:
            pick = min if metric in LOWER_IS_BETTER else max
            best = pick(known, key=lambda t: known[t])
        cells = [
            "—" if v is None else (f"**{v:.4f}**" if t == best else f"{v:.4f}")
            for t, v in values.items()
        ]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines.append("| run | " + " | ".join(f"`{runs[t].run_id[:12]}`" for t in types) + " |")
    return "\n".join(lines)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    experiment: Annotated[str, typer.Option(help="The experiment to read.")] = EXPERIMENT_NAME,
) -> None:
    """Print the latest XGBoost and baseline runs' metrics side by side, as Markdown."""
    try:
        runs = latest_runs(ExperimentLogger(), experiment)
    except TrackingError as exc:
        sys.stderr.write(f"error ({exc.code}): {' '.join(exc.message.split())}\n")
        raise typer.Exit(1) from None
    if not runs:
        sys.stderr.write(
            f"no runs tagged model_type in experiment {experiment!r}: run "
            "`python -m models.churn.train` and `python -m models.churn_baseline.train` first\n"
        )
        raise typer.Exit(1)
    typer.echo(table(runs))


if __name__ == "__main__":
    app()
