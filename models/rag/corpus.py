"""The document corpus and its deterministic split into passages.

A passage is a run of at most ``chunk_size`` words of one markdown section (a heading line starts
a new section, so a passage never mixes two topics), consecutive passages sharing ``overlap``
words. Its text is the exact slice ``document.text[start:end]``, and its id is derived from the
source and those character offsets, so the same corpus and chunking always give the same ids and a
labelled span can be mapped to passages for any chunking.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tracking import InvalidInput

_WORD = re.compile(r"\S+")
_HEADING = re.compile(r"#{1,6} +(.+?)[ #]*")
_FENCE = re.compile(r" {0,3}(```|~~~)")


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus folder, POSIX separators
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """One passage of the corpus as indexed (served as ``features.Passage`` with its score)."""

    id: str
    source: str
    start: int  # character offsets into the document's text
    end: int
    text: str
    section: str  # the heading the passage sits under ("" before the first heading)


def passage_id(source: str, start: int, end: int) -> str:
    """``<source>:<start>-<end>``: stable across runs, unique within a corpus."""
    return f"{source}:{start}-{end}"


def load_corpus(folder: Path) -> list[Document]:
    """Every ``*.md`` file under ``folder``, sorted by path (the order fixes passage order).

    Raises:
        InvalidInput: the folder holds no markdown file.
    """
    documents = [
        Document(source=path.relative_to(folder).as_posix(), text=path.read_text(encoding="utf-8"))
        for path in sorted(folder.rglob("*.md"))
    ]
    if not documents:
        raise InvalidInput(f"corpus folder {folder} holds no .md file")
    return documents


def corpus_digest(documents: Sequence[Document]) -> str:
    """SHA-256 over every source name and text, in order: the corpus version."""
    digest = hashlib.sha256()
    for document in documents:
        for part in (document.source.encode(), document.text.encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def sections(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, heading)`` of each section; a section begins at its heading line.

    Lines inside fenced code blocks are never headings (``# comment`` in a shell snippet).
    """
    starts = []
    offset, fenced = 0, False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (found := _HEADING.fullmatch(line.rstrip("\r\n"))):
            starts.append((offset, found.group(1).strip()))
        offset += len(line)
    if not starts or starts[0][0] > 0:
        starts.insert(0, (0, ""))
    for (start, heading), (end, _) in zip(starts, [*starts[1:], (len(text), "")], strict=True):
        yield start, end, heading


def check_chunking(chunk_size: int, overlap: int) -> None:
    """Raises InvalidInput unless ``chunk_size >= 1`` and ``0 <= overlap < chunk_size``."""
    if chunk_size < 1 or not 0 <= overlap < chunk_size:
        raise InvalidInput(
            f"chunking needs chunk_size >= 1 and 0 <= overlap < chunk_size, "
            f"not chunk_size={chunk_size}, overlap={overlap}"
        )


def split_document(document: Document, chunk_size: int, overlap: int) -> list[Chunk]:
    """Split one document into passages of at most ``chunk_size`` words, ``overlap`` shared.

    Every word of the document is in at least one passage. A section's last passage ends at the
    section's last word; no passage lies wholly inside the one before it.

    Raises:
        InvalidInput: bad ``chunk_size`` or ``overlap``.
    """
    check_chunking(chunk_size, overlap)
    step = chunk_size - overlap
    passages = []
    for section_start, section_end, heading in sections(document.text):
        # Offsets are absolute: finditer with pos/endpos reports positions in the whole text.
        words = [m.span() for m in _WORD.finditer(document.text, section_start, section_end)]
        first = 0
        while first < len(words):
            last = min(first + chunk_size, len(words))
            start, end = words[first][0], words[last - 1][1]
            passages.append(
                Chunk(
                    id=passage_id(document.source, start, end),
                    source=document.source,
                    start=start,
                    end=end,
                    text=document.text[start:end],
                    section=heading,
                )
            )
            if last == len(words):
                break
            first += step
    return passages


def split_corpus(documents: Sequence[Document], chunk_size: int, overlap: int) -> list[Chunk]:
    """All documents' passages, in corpus order.

    Raises:
        InvalidInput: bad ``chunk_size`` or ``overlap``.
    """
    return [p for document in documents for p in split_document(document, chunk_size, overlap)]
