"""The RAG retriever's training end to end, into the embedded SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.base import load_predictor
from models.rag.features import RagQuery
from models.rag.predictor import RagPredictor
from models.rag.retriever import RetrieverConfig
from models.rag.train import SWEEP_CHUNK_SIZES, SWEEP_K1, TrainConfig, app, run_training
from tests.contract.conftest import Backend
from tracking import ExperimentLogger, ModelRegistry, Stage
from tracking.entities import Flavor

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
METRICS = ("recall_at_1", "recall_at_3", "recall_at_5", "recall_at_10", "mrr", "ndcg_at_10")


@pytest.fixture
def logger(backend: Backend) -> ExperimentLogger:
    return ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)


@pytest.fixture
def registry(backend: Backend) -> ModelRegistry:
    return ModelRegistry(store=backend.metadata, artifact_store=backend.artifacts, actor="trainer")


@SQLITE
def test_training_tracks_registers_and_promotes(
    logger: ExperimentLogger, registry: ModelRegistry, backend: Backend, tmp_path: Path
) -> None:
    result = run_training(TrainConfig(), promote="production", logger=logger, registry=registry,
                          show_progress=False)  # fmt: skip
    run = logger.get_run(result.run_id)
    assert run.status.value == "FINISHED"
    assert run.params["chunk_size"] == "100"
    assert run.params["k1"] == "1.2"
    assert run.params["stemmer"] == "english"
    assert int(run.params["questions"]) >= 50
    for prefix in ("", "dev_", "test_"):
        for key in METRICS:
            assert f"{prefix}{key}" in run.latest_metrics, f"{prefix}{key}"
        curve = logger.get_metric_history(run.run_id, f"{prefix}recall_at_k")
        assert [m.step for m in curve] == [1, 3, 5, 10]
        values = [m.value for m in curve]
        assert values == sorted(values)  # recall@k never falls as k grows
    assert [m.value for m in logger.get_metric_history(run.run_id, "recall_at_k")] == [
        result.metrics[f"recall_at_{k}"] for k in (1, 3, 5, 10)
    ]
    assert set(run.datasets) == {"corpus", "questions"}
    assert run.datasets["corpus"].digest_algorithm == "sha256-tree"
    assert {"index", "evaluation", "model_card"} <= set(run.artifacts)

    evaluation = run.artifacts["evaluation"]
    local = backend.artifacts.download(evaluation.uri, tmp_path / "evaluation.json",
                                       evaluation.sha256)  # fmt: skip
    per_question = json.loads(local.read_text())
    assert len(per_question) == int(run.params["questions"])
    assert {q["split"] for q in per_question} == {"dev", "test"}
    card = run.artifacts["model_card"]
    text = backend.artifacts.download(card.uri, tmp_path / "card.md", card.sha256).read_text()
    assert "## Intended use" in text
    assert "## Limits" in text

    version = result.version
    assert version is not None
    assert version.flavor is Flavor.RETRIEVER
    assert version.stage is Stage.PRODUCTION
    assert [s.name for s in version.signature] == ["query", "k"]
    assert version.metadata["retriever"]["chunk_size"] == 100
    assert version.sha256 == run.artifacts["index"].sha256

    predictor = load_predictor(registry, "rag")
    assert isinstance(predictor, RagPredictor)
    assert predictor.label == "v1"
    answer = predictor.respond(RagQuery(query="How do I roll production back to the old version?"))
    assert answer.model_version == "v1"
    assert 1 <= len(answer.passages) <= 5
    assert any("rollback" in p.text for p in answer.passages[:3])
    assert all(p.source.endswith(".md") for p in answer.passages)


@SQLITE
def test_default_config_reaches_the_quality_bar(
    logger: ExperimentLogger, registry: ModelRegistry
) -> None:
    # Measured: recall@1 0.500, @3 0.709, @5 0.784, @10 0.881, MRR 0.632, nDCG@10 0.691 on all
    # 67 questions. The bar sits a little below, so a regression in tokenising, splitting or
    # scoring fails here.
    metrics = run_training(TrainConfig(), logger=logger, registry=registry,
                           show_progress=False).metrics  # fmt: skip
    assert metrics["recall_at_10"] >= 0.85
    assert metrics["recall_at_5"] >= 0.75
    assert metrics["mrr"] >= 0.60
    assert metrics["ndcg_at_10"] >= 0.65


@SQLITE
def test_same_corpus_same_index_bytes(logger: ExperimentLogger, registry: ModelRegistry) -> None:
    first = run_training(TrainConfig(), logger=logger, registry=registry, show_progress=False)
    second = run_training(TrainConfig(), logger=logger, registry=registry, show_progress=False)
    assert first.metrics == second.metrics
    assert first.version is not None
    assert second.version is not None
    assert first.version.sha256 == second.version.sha256
    assert (first.version.version, second.version.version) == (1, 2)


@SQLITE
def test_sweep_registers_the_best_child_by_dev_ndcg(
    logger: ExperimentLogger, registry: ModelRegistry
) -> None:
    result = run_training(TrainConfig(), sweep=True, promote="staging", logger=logger,
                          registry=registry, show_progress=False)  # fmt: skip
    runs = logger.search_runs("rag", max_results=100).items
    parent = next(r for r in runs if r.run_name == "sweep")
    children = [r for r in runs if r.parent_run_id == parent.run_id]
    assert len(children) == len(SWEEP_CHUNK_SIZES) * len(SWEEP_K1)
    assert {(r.params["chunk_size"], r.params["k1"]) for r in children} == {
        (str(c), str(k)) for c in SWEEP_CHUNK_SIZES for k in SWEEP_K1
    }
    # Each chunk size keeps the default overlap's share (20 of 100 words).
    assert {r.params["chunk_size"]: r.params["overlap"] for r in children} == {
        "50": "10", "100": "20", "200": "40",
    }  # fmt: skip
    best = max(children, key=lambda r: r.latest_metrics["dev_ndcg_at_10"])
    assert result.run_id == best.run_id
    assert parent.tags["best_run_id"] == best.run_id
    assert parent.latest_metrics["best_dev_ndcg_at_10"] == best.latest_metrics["dev_ndcg_at_10"]
    assert result.version is not None
    assert result.version.run_id == best.run_id
    assert result.version.stage is Stage.STAGING


@SQLITE
def test_explicit_settings_are_logged(logger: ExperimentLogger, registry: ModelRegistry) -> None:
    config = TrainConfig(retriever=RetrieverConfig(chunk_size=60, overlap=0, k1=0.8, b=0.5,
                                                   stemmer="none", stopwords="lucene"))  # fmt: skip
    result = run_training(config, logger=logger, registry=registry, show_progress=False)
    params = logger.get_run(result.run_id).params
    assert (params["chunk_size"], params["overlap"], params["k1"], params["b"]) == (
        "60", "0", "0.8", "0.5",
    )  # fmt: skip
    assert (params["stemmer"], params["stopwords"]) == ("none", "lucene")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chunk-size", "5"], "--chunk-size"),
        (["--k1", "-1"], "--k1"),
        (["--b", "2"], "--b"),
        (["--stemmer", "porter"], "--stemmer"),
        (["--promote", "archived"], "--promote"),
    ],
)
def test_bad_options_are_clear_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not Path(".tracking").exists()  # nothing built, nothing written


def test_overlap_not_below_chunk_size_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["--chunk-size", "50", "--overlap", "50", "--no-progress"])
    assert result.exit_code == 1
    assert "error (invalid_input)" in result.output
    assert "overlap" in result.output


def test_cli_trains_into_the_embedded_store() -> None:
    result = CliRunner().invoke(app, ["--promote", "production", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "registered rag v1 (stage production)" in result.output
    assert "(test questions): recall_at_1=" in result.output
    assert ModelRegistry().get_version_by_alias("rag", "production").version == 1
