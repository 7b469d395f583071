"""Build, evaluate, log and register the documentation retriever.

    python -m models.rag.train [--chunk-size 100] [--overlap 20] [--k1 1.2] [--b 0.75]
                               [--method lucene] [--stemmer english] [--stopwords english]
                               [--split-compounds/--no-split-compounds]
                               [--index-headings/--no-index-headings]
                               [--promote staging|production] [--sweep]

Everything is tracked in the store named by ``TRACKING_URI`` / ``ARTIFACT_URI`` (the embedded
default when unset): the retriever's params, ``recall_at_k`` with step ``k`` for k = 1, 3, 5, 10
(one metric, so its chart is the recall@k curve), ``mrr`` and ``ndcg_at_10`` over every labelled
question (and ``dev_``/``test_`` versions over each split), the corpus and the questions as
datasets, the index bundle (``retriever`` flavor, no pickle), a per-question evaluation and a
model card. ``--sweep`` trains a chunk size x k1 grid as child runs of one parent and registers
the child with the best ``dev_ndcg_at_10``, so the test split stays unseen by the choice.
"""

from __future__ import annotations

import enum
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from models.rag import CORPUS_DIR, EXPERIMENT_NAME, MODEL_NAME, QUESTIONS_PATH
from models.rag.corpus import Document, corpus_digest, load_corpus, split_corpus
from models.rag.evaluation import NDCG_K, RECALL_KS, QuestionResult, evaluate
from models.rag.features import output_signature, signature
from models.rag.labels import Question, load_questions, resolve
from models.rag.retriever import BM25Index, RetrieverConfig
from models.training import PromoteOption, cli_errors, promote_if, registry_for, stage_value
from models.training import Stage as Stage
from tracking import ExperimentLogger, ModelRegistry, ModelVersion

SWEEP_CHUNK_SIZES = (50, 100, 200)
SWEEP_K1 = (0.9, 1.2, 1.5)
#: Ranks evaluated per question: the deepest cut-off any metric reads.
EVAL_DEPTH = max(*RECALL_KS, NDCG_K)
SELECTION_METRIC = f"dev_ndcg_at_{NDCG_K}"


# Typer reads choices from enums; their values are RetrieverConfig's Literal values.
class MethodChoice(enum.StrEnum):
    lucene = "lucene"
    robertson = "robertson"
    atire = "atire"
    bm25l = "bm25l"
    bm25plus = "bm25+"


class StemmerChoice(enum.StrEnum):
    english = "english"
    none = "none"


class StopwordsChoice(enum.StrEnum):
    english = "english"
    lucene = "lucene"
    none = "none"


@dataclass(frozen=True)
class TrainConfig:
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)
    corpus_dir: Path = CORPUS_DIR
    questions_path: Path = QUESTIONS_PATH
    experiment: str = EXPERIMENT_NAME
    model_name: str = MODEL_NAME


@dataclass(frozen=True)
class LabelledCorpus:
    documents: list[Document]
    questions: list[Question]
    digest: str

    @classmethod
    def load(cls, config: TrainConfig) -> LabelledCorpus:
        documents = load_corpus(config.corpus_dir)
        return cls(documents, load_questions(config.questions_path), corpus_digest(documents))


@dataclass
class TrainResult:
    run_id: str
    config: RetrieverConfig
    metrics: dict[str, float]  # over every question
    dev_metrics: dict[str, float]
    test_metrics: dict[str, float]
    passages: int
    seconds: float
    version: ModelVersion | None = None


def evaluate_index(
    index: BM25Index, corpus: LabelledCorpus
) -> tuple[list[QuestionResult], list[float]]:
    """Rank the top ``EVAL_DEPTH`` passages for every question; return results and query ms."""
    by_source = {d.source: d for d in corpus.documents}
    results, latencies = [], []
    for question in corpus.questions:
        groups = resolve(question, by_source, index.passages)
        started = time.perf_counter()
        ranked = tuple(chunk.id for chunk, _ in index.search(question.question, EVAL_DEPTH))
        latencies.append((time.perf_counter() - started) * 1000)
        results.append(QuestionResult(question.id, ranked, groups))
    return results, latencies


def _split_metrics(
    corpus: LabelledCorpus, results: Sequence[QuestionResult], split: str
) -> dict[str, float]:
    chosen = {q.id for q in corpus.questions if q.split == split}
    return evaluate([r for r in results if r.question_id in chosen])


def _model_card(
    config: RetrieverConfig, corpus: LabelledCorpus, result: TrainResult, query_ms: float
) -> str:
    rows = "\n".join(
        f"| {name} | {result.metrics[name]:.3f} | {result.dev_metrics[name]:.3f} | "
        f"{result.test_metrics[name]:.3f} |"
        for name in (*(f"recall_at_{k}" for k in RECALL_KS), "mrr", f"ndcg_at_{NDCG_K}")
    )
    splits = {s: sum(q.split == s for q in corpus.questions) for s in ("dev", "test")}
    params = "\n".join(f"- `{k}`: {v}" for k, v in config.params().items())
    return f"""# Model card: documentation retriever (BM25)

## Intended use
Finding the passages of this project's documentation that answer a question, as the retrieval
step of question answering (RAG). Lexical matching only: a question must share words (after
stemming) with its answer.

## Index
- {result.passages} passages from {len(corpus.documents)} documents (corpus digest
  `{corpus.digest[:16]}`), split within markdown sections.
{params}

## Quality
{len(corpus.questions)} labelled questions ({splits["dev"]} dev, {splits["test"]} test); an answer
is a quoted span, and a passage holding the span's middle answers it.

| metric | all | dev | test |
|---|---|---|---|
{rows}

Mean query time: {query_ms:.2f} ms.

## Limits
- The questions were written by one person from the same documents; they are easier than real
  users' questions, which use other words.
- No semantic matching: synonyms the documents do not use are missed.
- The corpus is a frozen snapshot; answers about later changes are not in it.
"""


def train_one(
    logger: ExperimentLogger,
    config: TrainConfig,
    corpus: LabelledCorpus,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
) -> TrainResult:
    """Build and evaluate one index in its own run, logging everything; return its results."""
    started = time.perf_counter()
    settings = config.retriever
    name = run_name or f"bm25-chunk{settings.chunk_size}-k1_{settings.k1:g}"
    import bm25s  # type: ignore[import-untyped]  # for its version tag only

    with (
        logger.start_run(config.experiment, run_name=name, parent_run_id=parent_run_id) as run,
        tempfile.TemporaryDirectory(prefix="rag-train-") as tmp,
    ):
        folder = Path(tmp)
        passages = split_corpus(corpus.documents, settings.chunk_size, settings.overlap)
        run.log_params(
            {**settings.params(), "passages": len(passages), "documents": len(corpus.documents),
             "questions": len(corpus.questions), "corpus_digest": corpus.digest}
        )  # fmt: skip
        run.set_tags({"model": config.model_name, "framework": f"bm25s-{bm25s.__version__}"})
        run.log_dataset("corpus", config.corpus_dir)
        run.log_dataset("questions", config.questions_path)

        index = BM25Index.build(passages, settings)
        index.extra["corpus"] = {
            "digest": corpus.digest,
            "files": {d.source: d.sha256 for d in corpus.documents},
        }
        index.extra["bm25s_version"] = bm25s.__version__
        build_seconds = time.perf_counter() - started
        results, latencies = evaluate_index(index, corpus)
        metrics = evaluate(results)
        dev = _split_metrics(corpus, results, "dev")
        test = _split_metrics(corpus, results, "test")
        for prefix, values in (("", metrics), ("dev_", dev), ("test_", test)):
            for k in RECALL_KS:
                run.log_metric(f"{prefix}recall_at_k", values[f"recall_at_{k}"], step=k)
            run.log_metrics({f"{prefix}{key}": value for key, value in values.items()})
        query_ms = statistics.fmean(latencies)
        run.log_metrics({"build_seconds": build_seconds, "query_ms_mean": query_ms})

        bundle = index.save(folder / "rag_index.npz")
        run.log_artifact(bundle, name="index")
        evaluation = folder / "evaluation.json"
        by_id = {q.id: q for q in corpus.questions}
        evaluation.write_text(
            json.dumps(
                [
                    {
                        "id": r.question_id,
                        "split": by_id[r.question_id].split,
                        "question": by_id[r.question_id].question,
                        "first_relevant_rank": r.first_relevant_rank,
                        "relevant": [sorted(g) for g in r.groups],
                        "top_5": list(r.ranked[:5]),
                    }
                    for r in results
                ],
                indent=2,
            )
        )
        run.log_artifact(evaluation, name="evaluation")
        seconds = time.perf_counter() - started
        result = TrainResult(
            run_id=run.run_id,
            config=settings,
            metrics=metrics,
            dev_metrics=dev,
            test_metrics=test,
            passages=len(passages),
            seconds=seconds,
        )
        card = folder / "model_card.md"
        card.write_text(_model_card(settings, corpus, result, query_ms))
        run.log_artifact(card, name="model_card")
        run.log_metric("train_seconds", seconds)
    return result


def register(
    registry: ModelRegistry, config: TrainConfig, result: TrainResult, promote: str | None
) -> ModelVersion:
    """Register the run's index bundle (``retriever`` flavor); optionally promote it."""
    ndcg = result.test_metrics[f"ndcg_at_{NDCG_K}"]
    version = registry.register_model(
        config.model_name,
        run_id=result.run_id,
        artifact="index",
        flavor="retriever",
        signature=signature(),
        output_signature=output_signature(),
        description=f"BM25 documentation retriever, test nDCG@10 {ndcg:.3f}",
        metadata={
            "retriever": result.config.params(),
            "metrics": result.metrics,
            "test_metrics": result.test_metrics,
            "passages": result.passages,
        },
    )
    return promote_if(
        registry, version, promote, reason=f"trained by models.rag.train, test nDCG@10 {ndcg:.3f}"
    )


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )


def sweep_configs(base: RetrieverConfig) -> list[RetrieverConfig]:
    """The chunk size x k1 grid; each chunk size keeps the base overlap's share of a chunk."""
    return [
        replace(base, chunk_size=size, k1=k1,
                overlap=min(size - 1, round(size * base.overlap / base.chunk_size)))
        for size, k1 in itertools.product(SWEEP_CHUNK_SIZES, SWEEP_K1)
    ]  # fmt: skip


def run_training(
    config: TrainConfig,
    *,
    sweep: bool = False,
    promote: str | None = None,
    logger: ExperimentLogger | None = None,
    registry: ModelRegistry | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Build (or sweep), register the best index and optionally promote it."""
    logger = logger or ExperimentLogger()
    registry = registry_for(logger, registry)
    corpus = LabelledCorpus.load(config)
    if not sweep:
        result = train_one(logger, config, corpus)
    else:
        trials = [replace(config, retriever=c) for c in sweep_configs(config.retriever)]
        with logger.start_run(config.experiment, run_name="sweep") as parent:
            grid = {"chunk_size": SWEEP_CHUNK_SIZES, "k1": SWEEP_K1}
            parent.log_params({"grid": json.dumps(grid), "trials": len(trials),
                               "selection_metric": SELECTION_METRIC,
                               "corpus_digest": corpus.digest})  # fmt: skip
            results = []
            with _progress(show_progress) as progress:
                task = progress.add_task("sweep trials", total=len(trials))
                for trial in trials:
                    results.append(train_one(logger, trial, corpus, parent_run_id=parent.run_id))
                    progress.advance(task)
            # Ties go to the earlier trial (smaller chunks, then smaller k1): max keeps the first.
            best = max(
                range(len(results)),
                key=lambda i: (results[i].dev_metrics[f"ndcg_at_{NDCG_K}"],
                               results[i].dev_metrics["mrr"]),
            )  # fmt: skip
            result, config = results[best], trials[best]
            parent.log_metrics(
                {f"best_{SELECTION_METRIC}": result.dev_metrics[f"ndcg_at_{NDCG_K}"],
                 f"best_test_ndcg_at_{NDCG_K}": result.test_metrics[f"ndcg_at_{NDCG_K}"],
                 "best_test_mrr": result.test_metrics["mrr"]}
            )  # fmt: skip
            parent.set_tags({"best_run_id": result.run_id})
    result.version = register(registry, config, result, promote)
    return result


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    chunk_size: Annotated[int, typer.Option(min=10, max=2000, help="Words per passage.")] = 100,
    overlap: Annotated[
        int, typer.Option(min=0, max=1999, help="Words shared by consecutive passages.")
    ] = 20,
    k1: Annotated[float, typer.Option(min=0.0, max=10.0, help="BM25 term saturation.")] = 1.2,
    b: Annotated[float, typer.Option(min=0.0, max=1.0, help="BM25 length normalisation.")] = 0.75,
    method: Annotated[
        MethodChoice, typer.Option(help="BM25 variant (bm25s method).")
    ] = MethodChoice.lucene,
    stemmer: Annotated[StemmerChoice, typer.Option()] = StemmerChoice.english,
    stopwords: Annotated[StopwordsChoice, typer.Option()] = StopwordsChoice.english,
    split_compounds: Annotated[
        bool, typer.Option(help="Also index the parts of TRACKING_URI, SHA-256, ...")
    ] = True,
    index_headings: Annotated[bool, typer.Option(help="Index section headings.")] = True,
    promote: PromoteOption = None,
    sweep: Annotated[
        bool, typer.Option(help="Grid-search chunk size and k1 as child runs.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for sweeps.")] = True,
) -> None:
    """Build the documentation retriever, track the run and register the index."""
    with cli_errors():
        retriever = RetrieverConfig(
            chunk_size=chunk_size,
            overlap=overlap,
            k1=k1,
            b=b,
            method=method.value,
            stemmer=stemmer.value,
            stopwords=stopwords.value,
            split_compounds=split_compounds,
            index_headings=index_headings,
        )
        result = run_training(
            TrainConfig(retriever=retriever),
            sweep=sweep,
            promote=stage_value(promote),
            show_progress=progress and sys.stderr.isatty(),
        )
    version = result.version
    assert version is not None
    for label, values in (("all", result.metrics), ("test", result.test_metrics)):
        shown = ", ".join(f"{key}={value:.3f}" for key, value in values.items())
        typer.echo(f"run {result.run_id} ({label} questions): {shown}")
    typer.echo(
        f"registered {version.name} {version.label} (stage {version.stage.value}); "
        f"chunk_size={result.config.chunk_size} overlap={result.config.overlap} "
        f"k1={result.config.k1:g} b={result.config.b:g}; {result.passages} passages; "
        f"built in {result.seconds:.1f} s"
    )


if __name__ == "__main__":
    app()
