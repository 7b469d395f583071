"""A BM25 retriever over the project's own documentation (retrieval for RAG).

``corpus/`` is a frozen snapshot of the docs, so the labelled questions in ``questions.jsonl``
stay valid when the live docs change; ``train`` builds, evaluates, logs and registers the index.
"""

from pathlib import Path

MODEL_NAME = "rag"
EXPERIMENT_NAME = "rag"
PACKAGE_DIR = Path(__file__).resolve().parent
CORPUS_DIR = PACKAGE_DIR / "corpus"
QUESTIONS_PATH = PACKAGE_DIR / "questions.jsonl"
