"""``make run``'s set-up: the demo models in production and a local API key (embedded store).

Trains, registers and promotes each demo model (``churn``, XGBoost; ``churn-baseline``, the
logistic ONNX baseline; ``rag``, the documentation retriever) only when it has no production
version yet, and
creates a random local key once: its SHA-256 goes to ``.tracking/api_keys.json`` (the ``API_KEYS``
format) and the key itself is printed this one time, with a curl command to paste.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from pathlib import Path

import typer

from tracking import ModelRegistry, NotFound

KEY_FILE = Path(".tracking/api_keys.json")
RAG_BODY = {"query": "how do I roll back a model?", "k": 3}
SEED_BODY = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}


def _in_production(registry: ModelRegistry, name: str) -> bool:
    try:
        version = registry.get_version_by_alias(name, "production")
    except NotFound:
        return False
    typer.echo(f"{name} {version.label} is in production already")
    return True


def ensure_churn(registry: ModelRegistry) -> None:
    if _in_production(registry, "churn"):
        return
    from models.churn.train import TrainConfig, run_training

    result = run_training(TrainConfig(), promote="production", show_progress=sys.stderr.isatty())
    assert result.version is not None
    typer.echo(
        f"trained and promoted churn {result.version.label}: "
        f"test AUC {result.test_metrics['test_auc']:.3f}, "
        f"Brier {result.test_metrics['test_brier']:.3f}"
    )


def ensure_baseline(registry: ModelRegistry) -> None:
    if _in_production(registry, "churn-baseline"):
        return
    # Training needs scikit-learn and skl2onnx (requirements-train.txt, which `make install`
    # installs); serving it needs onnxruntime only.
    from models.churn_baseline.train import BaselineConfig
    from models.churn_baseline.train import run_training as train_baseline

    result = train_baseline(BaselineConfig(), promote="production")
    assert result.version is not None
    typer.echo(
        f"trained and promoted churn-baseline {result.version.label} (ONNX): "
        f"test AUC {result.test_metrics['test_auc']:.3f}, "
        f"Brier {result.test_metrics['test_brier']:.3f}"
    )


def ensure_rag(registry: ModelRegistry) -> None:
    if _in_production(registry, "rag"):
        return
    from models.rag.train import TrainConfig, run_training

    result = run_training(TrainConfig(), promote="production", show_progress=sys.stderr.isatty())
    assert result.version is not None
    typer.echo(
        f"built and promoted rag {result.version.label}: {result.passages} passages, "
        f"test MRR {result.test_metrics['mrr']:.3f}"
    )


def ensure_models() -> None:
    registry = ModelRegistry()
    ensure_churn(registry)
    ensure_baseline(registry)
    ensure_rag(registry)


def ensure_key(port: str) -> None:
    if KEY_FILE.exists():
        typer.echo(
            f"using the local API key created earlier ({KEY_FILE}); "
            "delete that file and run `make run` again for a new key"
        )
        key = "<your local key>"
    else:
        key = secrets.token_hex(24)  # hex: safe to paste in any shell or header
        digest = hashlib.sha256(key.encode()).hexdigest()
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        config = [{"name": "local", "scopes": ["predict", "read", "admin"], "sha256": digest}]
        # Created with 0600: the file holds only a hash, but it grants nobody else anything.
        descriptor = os.open(KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(config, handle)
        typer.echo(f"\nYour local API key (shown once, only its SHA-256 is kept): {key}\n")
    typer.echo("Try it:")
    typer.echo(
        f"  curl -s -X POST http://localhost:{port}/predict/churn -H 'X-API-Key: {key}' "
        f"-H 'Content-Type: application/json' -d '{json.dumps(SEED_BODY)}'"
    )
    typer.echo(
        f"  curl -s -X POST http://localhost:{port}/predict/rag -H 'X-API-Key: {key}' "
        f"-H 'Content-Type: application/json' -d '{json.dumps(RAG_BODY)}'"
    )
    typer.echo(f"Docs: http://localhost:{port}/docs and http://localhost:{port}/redoc")
    typer.echo(f"Web UI: http://localhost:{port}/ui (log in with the key above)\n")


def main() -> None:
    ensure_models()
    ensure_key(os.environ.get("PORT", "8000"))


if __name__ == "__main__":
    main()
