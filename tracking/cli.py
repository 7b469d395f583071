"""The ``tracking`` command: set up the stores and look at experiments, runs and models.

Configured like the SDK, by ``TRACKING_URI`` / ``ARTIFACT_URI`` (and the standard AWS variables).
Errors print one line on stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from tracking.backends import build_stores
from tracking.config import EventsConfig, load_config
from tracking.entities import (
    AliasChange,
    EventStatus,
    FeatureSpec,
    ModelVersion,
    OutboxRecord,
    TrafficPolicy,
    iter_pages,
)
from tracking.errors import InvalidInput, TrackingError
from tracking.logger import ExperimentLogger
from tracking.registry import ModelRegistry

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="Experiment tracking and model registry on SQLite or DynamoDB + S3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
experiments_app = typer.Typer(help="Experiments.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs of an experiment.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(runs_app, name="runs")
models_app = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)
app.add_typer(models_app, name="models")
traffic_app = typer.Typer(
    help="A model's traffic policy: weights per alias, shadows, stickiness.", no_args_is_help=True
)
models_app.add_typer(traffic_app, name="traffic")
events_app = typer.Typer(
    help="Registry events (the outbox) and their delivery.", no_args_is_help=True
)
app.add_typer(events_app, name="events")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
# Not a terminal (a pipe, a CI log): do not squeeze tables into 80 columns.
_out = Console(width=None if sys.stdout.isatty() else 200)
_err = Console(stderr=True)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the SDK's errors into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except TrackingError as exc:
            # Plain write, not rich: one line, never wrapped, whatever the terminal width.
            message = " ".join(exc.message.split())
            sys.stderr.write(f"error ({exc.code}): {message}\n")
            raise typer.Exit(1) from None

    return wrapper


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_json(data: Any) -> None:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [
            item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in data
        ]
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    _out.print(table)


def _logger() -> ExperimentLogger:
    return ExperimentLogger()


@app.command()
@handle_errors
def init() -> None:
    """Create the tables (DynamoDB) or file (SQLite) and the artifact bucket or folder.

    Idempotent: what exists is left as it is.
    """
    config = load_config()
    metadata, artifacts = build_stores(config)
    metadata.initialize()
    artifacts.initialize()
    _out.print(f"metadata store ready: {config.tracking_uri}", markup=False, highlight=False)
    _out.print(f"artifact store ready: {config.artifact_uri}", markup=False, highlight=False)


@experiments_app.command("list")
@handle_errors
def experiments_list(as_json: JsonOption = False) -> None:
    """List experiments by name."""
    logger = _logger()
    experiments = list(iter_pages(lambda token: logger.list_experiments(page_token=token)))
    if as_json:
        print_json(experiments)
        return
    print_table(
        "Experiments",
        ["name", "id", "created"],
        [(e.name, e.experiment_id, _time(e.created_at)) for e in experiments],
    )


@runs_app.command("list")
@handle_errors
def runs_list(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    filter_: Annotated[
        str | None,
        typer.Option("--filter", help="e.g. \"metrics.auc > 0.8 and params.max_depth = '5'\""),
    ] = None,
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", help="e.g. 'metrics.auc DESC' (repeatable)")
    ] = None,
    max_results: Annotated[int, typer.Option("--max-results", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List runs of an experiment, filtered and ordered like search_runs."""
    page = _logger().search_runs(
        experiment, filter=filter_, order_by=order_by, max_results=max_results
    )
    if as_json:
        print_json(page.items)
        return
    print_table(
        f"Runs of {experiment}",
        ["run id", "name", "status", "started", "metrics", "params"],
        [
            (
                run.run_id,
                run.run_name,
                run.status.value,
                _time(run.start_time),
                ", ".join(f"{k}={v:.4g}" for k, v in sorted(run.latest_metrics.items())),
                ", ".join(f"{k}={v}" for k, v in sorted(run.params.items())),
            )
            for run in page.items
        ],
    )
    if page.next_token:
        _err.print(f"(more than {max_results} runs; raise --max-results)", markup=False)


@runs_app.command("show")
@handle_errors
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id.")], as_json: JsonOption = False
) -> None:
    """Show one run: params, latest metrics, tags, datasets, artifacts."""
    run = _logger().get_run(run_id)
    if as_json:
        print_json(run)
        return
    print_table(
        f"Run {run.run_id}",
        ["field", "value"],
        [
            ("experiment", run.experiment_name),
            ("name", run.run_name),
            ("status", run.status.value),
            ("started", _time(run.start_time)),
            ("ended", _time(run.end_time)),
            ("parent", run.parent_run_id),
        ],
    )
    print_table("Params", ["key", "value"], sorted(run.params.items()))
    print_table(
        "Metrics (latest)",
        ["key", "value", "step"],
        [
            (m.key, f"{m.value:.6g}", m.step)
            for m in sorted(run.metrics.values(), key=lambda m: m.key)
        ],
    )
    print_table("Tags", ["key", "value"], sorted(run.tags.items()))
    print_table(
        "Datasets",
        ["name", "digest", "uri"],
        [(d.name, f"{d.digest_algorithm}:{d.digest[:16]}", d.uri) for d in run.datasets.values()],
    )
    print_table(
        "Artifacts",
        ["name", "sha256", "size", "uri"],
        [(a.name, a.sha256[:16], a.size, a.uri) for a in run.artifacts.values()],
    )


def _registry() -> ModelRegistry:
    return ModelRegistry()


def _version_rows(versions: Sequence[ModelVersion]) -> list[tuple[object, ...]]:
    return [
        (
            v.label,
            v.stage.value,
            v.flavor.value,
            _signature_summary(v),
            v.run_id,
            v.sha256[:12],
            _time(v.created_at),
            v.actor,
        )
        for v in versions
    ]


def _signature_summary(version: ModelVersion) -> str:
    """``query:str, k:int? -> id:str, ...``: inputs (``?`` optional) and outputs, if any."""

    def fields(specs: Sequence[FeatureSpec]) -> str:
        return ", ".join(f"{s.name}:{s.type}{'' if s.required else '?'}" for s in specs)

    text = fields(version.signature) or "-"
    return f"{text} -> {fields(version.output_signature)}" if version.output_signature else text


_VERSION_COLUMNS = ["version", "stage", "flavor", "signature", "run id", "sha256", "created", "by"]


@models_app.command("list")
@handle_errors
def models_list(as_json: JsonOption = False) -> None:
    """List registered models with their aliases."""
    registry = _registry()
    models = list(iter_pages(lambda token: registry.list_models(page_token=token)))
    if as_json:
        print_json(models)
        return
    print_table(
        "Models",
        ["name", "latest", "aliases", "updated"],
        [
            (
                m.name,
                f"v{m.latest_version}",
                ", ".join(f"{alias}=v{v}" for alias, v in sorted(m.aliases.items())),
                _time(m.updated_at),
            )
            for m in models
        ],
    )


@models_app.command("versions")
@handle_errors
def models_versions(
    name: Annotated[str, typer.Argument(help="Model name.")], as_json: JsonOption = False
) -> None:
    """List a model's versions, newest first."""
    versions = list(_registry().store.iter_versions(name))
    if as_json:
        print_json(versions)
        return
    print_table(f"Versions of {name}", _VERSION_COLUMNS, _version_rows(versions))


@models_app.command("promote")
@handle_errors
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.", min=1)],
    to: Annotated[str, typer.Option("--to", help="production, staging or a custom alias.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the history.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias (production, staging, ...) at a version."""
    moved = _registry().promote(name, version, to=to, reason=reason)
    if as_json:
        print_json(moved)
        return
    _out.print(f"{name} {moved.label} is now {to} (stage: {moved.stage.value})", markup=False)


@models_app.command("rollback")
@handle_errors
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to roll back.")] = "production",
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the history.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Move an alias back to the version it pointed at before."""
    moved = _registry().rollback(name, alias=alias, reason=reason)
    if as_json:
        print_json(moved)
        return
    _out.print(f"{name} {alias} rolled back to {moved.label}", markup=False)


@models_app.command("history")
@handle_errors
def models_history(
    name: Annotated[str, typer.Argument(help="Model name.")], as_json: JsonOption = False
) -> None:
    """Show a model's audit history, oldest first."""
    entries: list[AliasChange] = _registry().history(name)
    if as_json:
        print_json(entries)
        return
    print_table(
        f"History of {name}",
        ["when", "action", "alias", "from", "to", "by", "reason"],
        [
            (
                _time(h.timestamp),
                h.action.value,
                h.alias,
                None if h.from_version is None else f"v{h.from_version}",
                None if h.to_version is None else f"v{h.to_version}",
                h.actor,
                h.reason,
            )
            for h in entries
        ],
    )


def _print_policy(policy: TrafficPolicy) -> None:
    print_table(
        f"Traffic of {policy.name} (revision {policy.revision})",
        ["field", "value"],
        [
            ("weights", ", ".join(f"{alias}={w}%" for alias, w in policy.weights.items())),
            ("shadow", ", ".join(policy.shadow) or None),
            ("sticky", policy.sticky),
            ("policy id", policy.policy_id),
            ("updated", _time(policy.updated_at)),
            ("by", policy.updated_by),
            ("reason", policy.reason),
        ],
    )


def _parse_weights(values: Sequence[str]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for value in values:
        alias, sep, number = value.partition("=")
        if not sep or not number.strip().lstrip("-").isdigit():
            raise InvalidInput(f"--weight takes alias=percent (production=90), not {value!r}")
        if alias in weights:
            raise InvalidInput(f"--weight names {alias!r} twice")
        weights[alias] = int(number)
    return weights


@traffic_app.command("show")
@handle_errors
def traffic_show(
    name: Annotated[str, typer.Argument(help="Model name.")], as_json: JsonOption = False
) -> None:
    """Show the model's traffic policy (production 100% when none is set)."""
    policy = _registry().get_traffic(name)
    if as_json:
        print_json(policy)
        return
    _print_policy(policy)


@traffic_app.command("set")
@handle_errors
def traffic_set(
    name: Annotated[str, typer.Argument(help="Model name.")],
    weight: Annotated[
        list[str],
        typer.Option("--weight", help="alias=percent, repeatable; the percents sum to 100."),
    ],
    shadow: Annotated[
        list[str] | None,
        typer.Option("--shadow", help="An alias scored on the same requests (repeatable)."),
    ] = None,
    sticky: Annotated[
        str | None, typer.Option("--sticky", help="Request field that keeps a caller on a variant.")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the history.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Split traffic between aliases, e.g. --weight production=90 --weight challenger=10."""
    policy = _registry().set_traffic(
        name, weights=_parse_weights(weight), shadow=shadow or [], sticky=sticky, reason=reason
    )
    if as_json:
        print_json(policy)
        return
    _print_policy(policy)


@traffic_app.command("clear")
@handle_errors
def traffic_clear(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the history.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Send all traffic to production again."""
    policy = _registry().clear_traffic(name, reason=reason)
    if as_json:
        print_json(policy)
        return
    _out.print(f"{name}: all traffic to production (revision {policy.revision})", markup=False)


@events_app.command("list")
@handle_errors
def events_list(
    status: Annotated[
        EventStatus | None, typer.Option("--status", help="pending, delivered or dead.")
    ] = None,
    max_results: Annotated[int, typer.Option("--max-results", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List registry events, oldest first, with their webhook delivery state."""
    store, _ = build_stores(load_config())
    page = store.list_events(status, max_results)
    records: list[OutboxRecord] = list(page.items)
    if as_json:
        print_json(records)
        return
    print_table(
        "Events",
        ["when", "id", "type", "model", "alias", "from", "to", "by", "status", "attempts", "error"],
        [
            (
                _time(r.event.time),
                r.event.event_id,
                r.event.type.value,
                r.event.model,
                r.event.alias,
                r.event.from_version,
                r.event.to_version,
                r.event.actor,
                r.status.value,
                r.attempts,
                r.last_error,
            )
            for r in records
        ],
    )
    if page.next_token:
        _err.print(f"(more than {max_results} events; raise --max-results)", markup=False)


@events_app.command("deliver")
@handle_errors
def events_deliver(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Events to try.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """POST due events to the webhooks in EVENT_WEBHOOKS (one attempt each; run it on a timer)."""
    from tracking.events.dispatch import Dispatcher

    try:
        config = EventsConfig()
    except ValueError as error:
        raise InvalidInput(f"bad event settings: {error}") from None
    store, _ = build_stores(load_config())
    dispatcher = Dispatcher(store, config)
    if not dispatcher.enabled:
        raise InvalidInput("no webhooks configured: set EVENT_WEBHOOKS")
    report = dispatcher.deliver_due(limit=limit)
    if as_json:
        print_json(
            {
                "delivered": report.delivered,
                "retrying": report.retrying,
                "dead": report.dead,
                "skipped": report.skipped,
            }
        )
        return
    _out.print(
        f"delivered {len(report.delivered)}, retrying {len(report.retrying)}, "
        f"dead {len(report.dead)}, skipped {len(report.skipped)}",
        markup=False,
    )


SinceOption = Annotated[
    str, typer.Option("--since", help="The window, ending now: 30m, 24h, 7d (at most 31d).")
]


def _fmt(value: object, digits: int = 3) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def _ci(interval: dict[str, Any]) -> str:
    if interval.get("value") is None:
        return "-"
    if interval.get("low") is None:
        return _fmt(interval["value"])
    return f"{_fmt(interval['value'])} [{_fmt(interval['low'])}, {_fmt(interval['high'])}]"


def _window_report(
    build: Callable[..., dict[str, Any]], name: str, since: str, as_json: bool
) -> dict[str, Any] | None:
    """``build``'s report on ``name`` over the window ``since``; ``None`` once printed as JSON."""
    from tracking.monitoring.prediction_log import parse_since

    report = build(_registry(), name, since=parse_since(since), now=datetime.now(UTC))
    if as_json:
        print_json(report)
        return None
    return report


@app.command("ab")
@handle_errors
def ab(
    name: Annotated[str, typer.Argument(help="Model name.")],
    since: SinceOption = "24h",
    as_json: JsonOption = False,
) -> None:
    """Compare a model's variants: requests, scores, and AUC/logloss/Brier with 95% CIs."""
    from tracking.monitoring.reports import traffic_report

    report = _window_report(traffic_report, name, since, as_json)
    if report is None:
        return
    rows = []
    for v in report["variants"]:
        quantiles = v["scores"]["quantiles"]
        rows.append((
            v["variant"] + (" (baseline)" if v["variant"] == report["baseline"] else ""),
            v["requests"],
            ", ".join(f"{k}:{n}" for k, n in sorted(v["versions"].items())),
            _fmt(quantiles.get("p50")),
            f"{_fmt(quantiles.get('p5'))}-{_fmt(quantiles.get('p95'))}",
            v["labelled"],
            _ci(v["metrics"]["auc"]),
            _ci(v["metrics"]["logloss"]),
            _ci(v["metrics"]["brier"]),
        ))  # fmt: skip
    print_table(
        f"{name}: variants since {since} ({report['requests']} predictions)",
        ["variant", "requests", "versions", "score p50", "p5-p95", "labelled",
         "AUC [95% CI]", "logloss", "Brier"],
        rows,
    )  # fmt: skip
    if report["differences"]:
        print_table(
            f"Difference from {report['baseline']} (challenger - baseline, 95% CI)",
            ["variant", "AUC", "logloss", "Brier"],
            [
                (d["variant"], _ci(d["metrics"]["auc"]), _ci(d["metrics"]["logloss"]),
                 _ci(d["metrics"]["brier"]))
                for d in report["differences"]
            ],
        )  # fmt: skip
    if report["truncated"]:
        _out.print("note: the window holds more predictions than a report reads; truncated")


@app.command("drift")
@handle_errors
def drift_command(
    name: Annotated[str, typer.Argument(help="Model name.")],
    since: SinceOption = "24h",
    as_json: JsonOption = False,
) -> None:
    """PSI and KS of the live score (and features, when logged) against the training profile."""
    from tracking.monitoring.reports import drift_report

    report = _window_report(drift_report, name, since, as_json)
    if report is None:
        return
    rows = []
    for entry in report["variants"]:
        checks = [("score", entry.get("score")), *sorted((entry.get("features") or {}).items())]
        for column, result in checks:
            if result is None:
                continue
            rows.append((
                entry["variant"], entry["version"], column, result["rows"], _fmt(result["psi"]),
                _fmt(result["ks"]), _fmt(result["null_rate"], 2),
                _fmt(result["train_null_rate"], 2), result["level"].upper()
                if result["drift"] else result["level"],
            ))  # fmt: skip
    print_table(
        f"{name}: drift since {since} ({report['rows']} predictions; PSI > "
        f"{report['psi_alert']} is drift)",
        ["variant", "version", "column", "rows", "PSI", "KS", "nulls", "train nulls", "level"],
        rows,
    )
    for entry in report["variants"]:
        if entry.get("note"):
            _out.print(f"{entry['variant']} {entry['version']}: {entry['note']}", markup=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
