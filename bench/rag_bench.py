"""Retriever latency at 10,000 passages, against the shipped 151-passage index in the same run.

The big corpus is synthetic but shaped like the real one: each passage is ``--words`` words drawn
(seeded) from the real corpus's own word sequence, in runs of 5 to 40 consecutive words, so the
vocabulary and the term frequencies are the documentation's. Both indexes are built with the
default retriever parameters, and each of the 67 labelled questions is answered (k=5) through
``RagPredictor.predict_records`` with a validated ``RagQuery``, as the route does. Per index: the
p50/p90/p99 over ``--passes`` passes of every question, and the ratio of the p50s.

    python bench/rag_bench.py [--passages 10000] [--words 100] [--passes 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.rag.corpus import Chunk, load_corpus, split_corpus  # noqa: E402
from models.rag.features import RagQuery  # noqa: E402
from models.rag.labels import load_questions  # noqa: E402
from models.rag.predictor import RagPredictor  # noqa: E402
from models.rag.retriever import BM25Index, RetrieverConfig  # noqa: E402
from models.rag.train import CORPUS_DIR, QUESTIONS_PATH  # noqa: E402


def synthetic(words: list[str], count: int, size: int, seed: int = 5) -> list[Chunk]:
    rng = random.Random(seed)
    passages = []
    for index in range(count):
        picked: list[str] = []
        while len(picked) < size:
            run = rng.randint(5, 40)
            start = rng.randrange(0, max(1, len(words) - run))
            picked.extend(words[start : start + run])
        text = " ".join(picked[:size])
        passages.append(Chunk(id=f"synthetic:{index}", source=f"synthetic/{index // 100}.md",
                              start=0, end=len(text), text=text, section=""))  # fmt: skip
    return passages


def measure(predictor: RagPredictor, queries: list[RagQuery], passes: int) -> list[float]:
    timings = []
    for _ in range(passes):
        for query in queries:
            started = time.perf_counter()
            predictor.predict_records([query])
            timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    config = RetrieverConfig()
    documents = load_corpus(CORPUS_DIR)
    real = split_corpus(documents, config.chunk_size, config.overlap)
    words = " ".join(document.text for document in documents).split()
    started = time.perf_counter()
    big = synthetic(words, args.passages, args.words)
    indexes = {
        f"shipped ({len(real)} passages)": BM25Index.build(real, config),
        f"synthetic ({len(big)} passages)": BM25Index.build(big, config),
    }
    print(f"built both indexes in {time.perf_counter() - started:.1f} s")
    queries = [RagQuery(query=q.question, k=5) for q in load_questions(QUESTIONS_PATH)]
    for index in indexes.values():
        measure(RagPredictor(None, index, "bench"), queries[:10], 1)  # warm-up
    print(f"{len(queries)} labelled questions x {args.passes} passes, k=5 (ms per query)")
    print(f"{'index':<28} {'p50':>7} {'p90':>7} {'p99':>7} {'mean':>7}")
    p50s = []
    for name, index in indexes.items():
        timings = measure(RagPredictor(None, index, "bench"), queries, args.passes)
        p50s.append(_quantile(timings, 0.5))
        print(f"{name:<28} {_quantile(timings, 0.5):>7.2f} {_quantile(timings, 0.9):>7.2f} "
              f"{_quantile(timings, 0.99):>7.2f} {statistics.fmean(timings):>7.2f}")  # fmt: skip
    print(f"p50 ratio synthetic/shipped: {p50s[1] / p50s[0]:.1f}x (goal: p50 <= 5 ms at 10,000)")


if __name__ == "__main__":
    main()
