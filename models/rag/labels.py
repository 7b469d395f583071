"""The labelled questions and how their answers map to passages for any chunking.

Each question names its answers as anchors: a source file of the corpus and a span of it quoted
verbatim (``quote`` must occur exactly once in that file). A passage answers an anchor when it
contains the span's middle character, so every anchor maps to at least one passage for every
chunk size and overlap (two when overlapping passages both cover the middle), and the labels
survive a chunk-size sweep unchanged.

Questions alternate between the ``dev`` split (odd positions in the file: 1st, 3rd, ...), on
which a sweep chooses its configuration, and ``test``, which reports it on unseen questions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models.rag.corpus import Chunk, Document
from tracking import InvalidInput

Split = Literal["dev", "test"]


@dataclass(frozen=True)
class Anchor:
    source: str
    quote: str


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[Anchor, ...]
    split: Split


def load_questions(path: Path) -> list[Question]:
    """Read ``questions.jsonl``: one ``{"id", "question", "answers": [{"source", "quote"}]}``
    object per line.

    Raises:
        InvalidInput: a malformed line, a duplicate id, or a question without answers.
    """
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            question = Question(
                id=str(raw["id"]),
                question=str(raw["question"]),
                answers=tuple(Anchor(str(a["source"]), str(a["quote"])) for a in raw["answers"]),
                split="dev" if len(questions) % 2 == 0 else "test",
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path.name} line {number}: malformed question ({exc!r})") from None
        if question.id in seen or not question.answers or not question.question.strip():
            raise InvalidInput(f"{path.name} line {number}: duplicate id or no question/answers")
        seen.add(question.id)
        questions.append(question)
    return questions


def locate(anchor: Anchor, documents: Mapping[str, Document]) -> tuple[int, int]:
    """The anchor's character span in its source.

    Raises:
        InvalidInput: no such source, or the quote is absent or occurs more than once.
    """
    document = documents.get(anchor.source)
    if document is None:
        raise InvalidInput(f"anchor source {anchor.source!r} is not in the corpus")
    start = document.text.find(anchor.quote)
    if not anchor.quote or anchor.quote != anchor.quote.strip():
        raise InvalidInput(f"quote {anchor.quote!r} is empty or starts or ends with a space")
    if start < 0:
        raise InvalidInput(f"quote {anchor.quote!r} does not occur in {anchor.source}")
    if document.text.find(anchor.quote, start + 1) >= 0:
        raise InvalidInput(f"quote {anchor.quote!r} occurs more than once in {anchor.source}")
    return start, start + len(anchor.quote)


def resolve(
    question: Question, documents: Mapping[str, Document], passages: Sequence[Chunk]
) -> tuple[frozenset[str], ...]:
    """One answer group per anchor: the ids of the passages holding the span's middle character.

    Raises:
        InvalidInput: an anchor that does not locate, or that no passage covers.
    """
    groups = []
    for anchor in question.answers:
        start, end = locate(anchor, documents)
        text = documents[anchor.source].text
        middle = (start + end - 1) // 2
        # Every word is in a passage, but the space between two passages may be in none: move
        # to the next non-space character (the quote ends with one).
        while text[middle].isspace():
            middle += 1
        group = frozenset(
            p.id for p in passages if p.source == anchor.source and p.start <= middle < p.end
        )
        if not group:  # unreachable for passages from split_corpus over the same documents
            raise InvalidInput(f"no passage covers the middle of quote {anchor.quote!r}")
        groups.append(group)
    return tuple(groups)
