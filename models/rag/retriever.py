"""BM25 retrieval: the tokenizer, building the index with bm25s, and the served index.

bm25s builds the index: it precomputes every (passage, term) BM25 score into a sparse CSC matrix
(``data``/``indices``/``indptr``, one column per vocabulary term), so a query's scores are sums
of the columns of its terms. The served index is that matrix plus the vocabulary and the passages,
saved as the ``retriever`` flavor's bundle (one ``.npz`` read with ``allow_pickle=False``) and
scored in NumPy here: serving needs neither bm25s's internals nor its import time (~0.3 s, it
pulls in scipy.sparse), and ``test_rag_units`` pins the scores to bm25s's own ``get_scores``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.rag.corpus import Chunk, check_chunking
from tracking import InvalidInput
from tracking.flavors import RetrieverIndex, load_retriever, save_retriever

Stemmer = Literal["english", "none"]
Stopwords = Literal["english", "lucene", "none"]
Method = Literal["lucene", "robertson", "atire", "bm25l", "bm25+"]

#: Lucene's English stop words, as bm25s ships them (``bm25s.stopwords.STOPWORDS_EN``).
_LUCENE_WORDS = (
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with"
)
LUCENE_STOPWORDS = frozenset(_LUCENE_WORDS.split())
#: Lucene's list plus the words questions are made of ("how do I ..."), which carry no topic.
_QUESTION_WORDS = (
    "about after all am any before can could did do does doing done from get gets got has have "
    "having he her here him his how i its me my our out over own she should so some than them "
    "those through too under up very we were what when where which while who whom why would you "
    "your"
)
ENGLISH_STOPWORDS = LUCENE_STOPWORDS | frozenset(_QUESTION_WORDS.split())
#: A token: letters and digits, optionally joined by ``_ - . /`` (``TRACKING_URI``, ``SHA-256``,
#: ``s3``, ``3.12``); 1-character tokens carry no meaning here and are dropped.
_TOKEN = re.compile(r"[a-z0-9]+(?:[_\-./][a-z0-9]+)*")
_SEPARATORS = re.compile(r"[_\-./]")
#: The manifest's ``kind``: what ``BM25Index.from_bundle`` accepts.
FORMAT_KIND = "bm25"


@dataclass(frozen=True)
class RetrieverConfig:
    """Everything that shapes the index; logged as the run's params and stored in the bundle."""

    chunk_size: int = 100  # words per passage
    overlap: int = 20  # words shared by consecutive passages of a section
    k1: float = 1.2
    b: float = 0.75
    method: Method = "lucene"
    stemmer: Stemmer = "english"
    stopwords: Stopwords = "english"
    split_compounds: bool = True  # also index the parts of TRACKING_URI, SHA-256, ...
    index_headings: bool = True  # index each passage with its section heading

    def __post_init__(self) -> None:
        check_chunking(self.chunk_size, self.overlap)
        if not (self.k1 >= 0 and 0 <= self.b <= 1):
            raise InvalidInput(f"BM25 needs k1 >= 0 and 0 <= b <= 1, not k1={self.k1}, b={self.b}")

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RetrieverConfig:
        """The config stored in a bundle; unknown keys are refused.

        Raises:
            InvalidInput: unknown or invalid settings.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise InvalidInput(f"unknown retriever settings {sorted(unknown)}")
        try:
            return cls(**params)
        except TypeError as exc:
            raise InvalidInput(f"bad retriever settings: {exc}") from None


class Tokenizer:
    """Lower-case, split into tokens, drop stop words, optionally split compounds and stem."""

    def __init__(self, config: RetrieverConfig) -> None:
        self.split_compounds = config.split_compounds
        self.stopwords = {
            "english": ENGLISH_STOPWORDS,
            "lucene": LUCENE_STOPWORDS,
            "none": frozenset(),
        }[config.stopwords]
        self._stem = _stemmer(config.stemmer)

    def __call__(self, text: str) -> list[str]:
        tokens = []
        for token in _TOKEN.findall(text.lower()):
            tokens.append(token)
            if self.split_compounds and _SEPARATORS.search(token):
                # Queries say "tracking URI" or "sha256" for TRACKING_URI and SHA-256.
                parts = _SEPARATORS.split(token)
                tokens.extend(parts)
                tokens.append("".join(parts))
        kept = [t for t in tokens if len(t) > 1 and t not in self.stopwords]
        stemmed: list[str] = self._stem(kept)
        return stemmed


def _stemmer(name: Stemmer) -> Any:
    if name == "none":
        return list
    import snowballstemmer  # type: ignore[import-untyped]  # no stubs; pure Python

    return snowballstemmer.stemmer(name).stemWords


def build_matrix(
    token_lists: Sequence[list[str]], config: RetrieverConfig
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, int]]:
    """Index tokenised passages with bm25s; return its CSC arrays and the vocabulary."""
    import bm25s  # type: ignore[import-untyped]  # no stubs; only training builds indexes

    bm25 = bm25s.BM25(k1=config.k1, b=config.b, method=config.method, csc_backend="numpy")
    # A passage may tokenise to nothing (a code fence of symbols); bm25s needs a token per
    # document, and the empty token is never produced by a query.
    bm25.index(
        [tokens or [""] for tokens in token_lists], create_empty_token=False, show_progress=False
    )
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "data": np.asarray(bm25.scores["data"], dtype=np.float32),
        "indices": np.asarray(bm25.scores["indices"], dtype=np.int32),
        "indptr": np.asarray(bm25.scores["indptr"], dtype=np.int64),
    }
    if bm25.nonoccurrence_array is not None:
        # BM25L and BM25+ give every passage a score for each query term it lacks.
        arrays["nonoccurrence"] = np.asarray(bm25.nonoccurrence_array, dtype=np.float32)
    vocab = {str(token): int(i) for token, i in bm25.vocab_dict.items()}
    return arrays, vocab


def _indexed_text(passage: Chunk, config: RetrieverConfig) -> str:
    return f"{passage.section}\n{passage.text}" if config.index_headings else passage.text


class BM25Index:
    """A built or loaded index: scores queries against its passages."""

    def __init__(
        self,
        config: RetrieverConfig,
        passages: Sequence[Chunk],
        arrays: Mapping[str, np.ndarray[Any, Any]],
        vocab: Mapping[str, int],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Raises InvalidInput when the arrays, vocabulary and passages do not fit together."""
        self.config = config
        self.passages = list(passages)
        self.vocab = dict(vocab)
        self.extra = dict(extra or {})
        try:
            self._data = arrays["data"]
            self._indices = arrays["indices"]
            self._indptr = arrays["indptr"]
        except KeyError as exc:
            raise InvalidInput(f"retriever index lacks array {exc}") from None
        self._nonoccurrence = arrays.get("nonoccurrence")
        terms = len(self._indptr) - 1
        if (
            self._data.ndim != 1
            or self._indices.shape != self._data.shape
            or self._indptr.ndim != 1
            or terms < 0
            or int(self._indptr[0]) != 0
            or int(self._indptr[-1]) != len(self._data)
            or bool(np.any(np.diff(self._indptr) < 0))
            or (len(self._indices) and not 0 <= int(self._indices.min()) <= int(
                self._indices.max()) < len(self.passages))
            or (self.vocab and not 0 <= min(self.vocab.values()) <= max(
                self.vocab.values()) < terms)
            or (self._nonoccurrence is not None and self._nonoccurrence.shape != (terms,))
        ):  # fmt: skip
            raise InvalidInput("retriever index arrays do not match its vocabulary and passages")
        self.tokenize = Tokenizer(config)

    @classmethod
    def build(cls, passages: Sequence[Chunk], config: RetrieverConfig) -> BM25Index:
        tokens = [Tokenizer(config)(_indexed_text(p, config)) for p in passages]
        arrays, vocab = build_matrix(tokens, config)
        return cls(config, passages, arrays, vocab)

    @cached_property
    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        arrays = {"data": self._data, "indices": self._indices, "indptr": self._indptr}
        if self._nonoccurrence is not None:
            arrays["nonoccurrence"] = self._nonoccurrence
        return arrays

    def scores(self, query: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Every passage's BM25 score for ``query``, and which passages hold a query term."""
        ids = [self.vocab[token] for token in self.tokenize(query) if token in self.vocab]
        scores = np.zeros(len(self.passages), dtype=np.float32)
        matched = np.zeros(len(self.passages), dtype=bool)
        for term in ids:  # a repeated query term counts again, as in bm25s
            start, end = int(self._indptr[term]), int(self._indptr[term + 1])
            np.add.at(scores, self._indices[start:end], self._data[start:end])
            matched[self._indices[start:end]] = True
        if self._nonoccurrence is not None and ids:
            scores += self._nonoccurrence[ids].sum()
        return scores, matched

    def search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        """The ``k`` best passages holding a query term, best first (ties: corpus order)."""
        scores, matched = self.scores(query)
        candidates = np.flatnonzero(matched)
        # Stable sort on the negated score: equal scores keep corpus order, so answers are
        # deterministic (bm25s's top-k selection does not promise an order among ties).
        order = candidates[np.argsort(-scores[candidates], kind="stable")][: max(k, 0)]
        return [(self.passages[i], float(scores[i])) for i in order]

    # -- the bundle ----------------------------------------------------------------------------

    def save(self, path: Path) -> Path:
        """Write the index as one ``retriever`` bundle (no pickle; deterministic bytes)."""
        manifest = {
            "kind": FORMAT_KIND,
            "config": self.config.params(),
            "vocab": self.vocab,
            "passages": [asdict(p) for p in self.passages],
            **self.extra,
        }
        return save_retriever(path, self.arrays, manifest)

    @classmethod
    def from_bundle(cls, index: RetrieverIndex) -> BM25Index:
        """Rebuild from a loaded bundle (``tracking.flavors.load_retriever``).

        Raises:
            InvalidInput: not a BM25 bundle, or its parts do not fit together.
        """
        manifest = index.manifest
        if manifest.get("kind") != FORMAT_KIND:
            raise InvalidInput(f"retriever bundle kind {manifest.get('kind')!r} is not bm25")
        try:
            config = RetrieverConfig.from_params(manifest["config"])
            passages = [
                Chunk(id=str(p["id"]), source=str(p["source"]), start=int(p["start"]),
                        end=int(p["end"]), section=str(p["section"]), text=str(p["text"]))
                for p in manifest["passages"]
            ]  # fmt: skip
            vocab = {str(token): int(i) for token, i in manifest["vocab"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"retriever bundle manifest is malformed: {exc!r}") from None
        extra = {k: v for k, v in manifest.items()
                 if k not in {"kind", "config", "vocab", "passages", "format",
                              "format_version", "arrays"}}  # fmt: skip
        return cls(config, passages, index.arrays, vocab, extra)

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        """Read a bundle file without pickle.

        Raises:
            InvalidInput: as ``tracking.flavors.load_retriever`` and ``from_bundle``.
        """
        return cls.from_bundle(load_retriever(path))
