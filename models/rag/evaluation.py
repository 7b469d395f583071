"""Retrieval metrics over ranked passage ids, as pure functions.

A question's relevance is a list of *answer groups*, one per labelled answer span: the passages
that hold that span (with overlapping chunks a span can sit in two passages). Counting groups
rather than passages keeps the metrics comparable across chunk sizes and overlaps: retrieving the
same answer twice, from two overlapping passages, is not two hits. With one passage per group
(no overlap) every metric here is its textbook binary-relevance form.

- ``recall_at_k``: the share of the question's groups with a passage in the top ``k``.
- ``reciprocal_rank``: ``1 / rank`` of the first passage of any group (0 if none is ranked).
- ``ndcg_at_k``: DCG with gain 1 for a passage that answers a group not answered higher up,
  ``1 / log2(rank + 1)``, over the ideal DCG (every group answered at ranks 1, 2, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Groups = Sequence[frozenset[str]]
RECALL_KS = (1, 3, 5, 10)
NDCG_K = 10


def _check(groups: Groups) -> None:
    if not groups or any(not group for group in groups):
        raise ValueError("a question needs at least one answer group, none of them empty")


def recall_at_k(ranked: Sequence[str], groups: Groups, k: int) -> float:
    _check(groups)
    top = set(ranked[:k])
    return sum(1 for group in groups if group & top) / len(groups)


def reciprocal_rank(ranked: Sequence[str], groups: Groups) -> float:
    _check(groups)
    relevant = frozenset().union(*groups)
    for rank, passage in enumerate(ranked, start=1):
        if passage in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], groups: Groups, k: int = NDCG_K) -> float:
    _check(groups)
    answered: set[int] = set()
    dcg = 0.0
    for rank, passage in enumerate(ranked[:k], start=1):
        new = {i for i, group in enumerate(groups) if passage in group} - answered
        if new:
            # One gain per passage, even if it answers two groups at once: the ideal ranking
            # below assumes one group per rank, so a combined answer cannot score above 1.
            answered |= new
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(groups)) + 1))
    return dcg / ideal


@dataclass(frozen=True)
class QuestionResult:
    question_id: str
    ranked: tuple[str, ...]
    groups: tuple[frozenset[str], ...]

    @property
    def first_relevant_rank(self) -> int | None:
        rr = reciprocal_rank(self.ranked, self.groups)
        return round(1 / rr) if rr else None


def evaluate(results: Sequence[QuestionResult]) -> dict[str, float]:
    """Mean metrics over questions: ``recall_at_{k}`` for ``RECALL_KS``, ``mrr``, ``ndcg_at_10``.

    Raises:
        ValueError: no results, or a question without answer groups.
    """
    if not results:
        raise ValueError("no questions to evaluate")
    totals: dict[str, float] = {f"recall_at_{k}": 0.0 for k in RECALL_KS}
    totals |= {"mrr": 0.0, f"ndcg_at_{NDCG_K}": 0.0}
    for result in results:
        for k in RECALL_KS:
            totals[f"recall_at_{k}"] += recall_at_k(result.ranked, result.groups, k)
        totals["mrr"] += reciprocal_rank(result.ranked, result.groups)
        totals[f"ndcg_at_{NDCG_K}"] += ndcg_at_k(result.ranked, result.groups, NDCG_K)
    return {name: total / len(results) for name, total in totals.items()}


def recall_curve(metrics: Mapping[str, float]) -> dict[int, float]:
    """``{k: recall@k}`` from ``evaluate``'s output, for logging as steps of one metric."""
    return {k: metrics[f"recall_at_{k}"] for k in RECALL_KS}
