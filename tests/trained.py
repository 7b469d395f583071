"""An embedded store with a small churn model in production, shared by several suites."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.churn.train import TrainConfig, run_training
from tracking import ExperimentLogger, ModelRegistry

SMALL = TrainConfig(rows=2000, n_estimators=20, early_stopping_rounds=5, seed=7)


@dataclass(frozen=True)
class TrainedStore:
    tracking_uri: str
    artifact_uri: str


def trained_store(folder: Path, config: TrainConfig = SMALL, *, rag: bool = False) -> TrainedStore:
    """Train ``config`` into a new SQLite store in ``folder`` and promote it (version 1).

    With ``rag`` the documentation retriever is built and promoted too (about a second).
    """
    store = TrainedStore(f"sqlite:///{folder / 'tracking.db'}", f"file://{folder / 'artifacts'}")
    logger = ExperimentLogger(store.tracking_uri, store.artifact_uri)
    registry = ModelRegistry(store=logger.metadata, artifact_store=logger.artifacts, actor="test")  # type: ignore[arg-type]
    run_training(config, promote="production", logger=logger, registry=registry,
                 show_progress=False, data_dir=folder / "data")  # fmt: skip
    if rag:
        from models.rag.train import TrainConfig as RagConfig
        from models.rag.train import run_training as build_index

        build_index(RagConfig(), promote="production", logger=logger, registry=registry,
                    show_progress=False)  # fmt: skip
    logger.close()
    return store
