"""RAG retriever pieces: splitting, ids, labels, metrics, tokenizer, scoring and the bundle."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from models.rag import CORPUS_DIR, QUESTIONS_PATH
from models.rag.corpus import (
    Document,
    corpus_digest,
    load_corpus,
    passage_id,
    sections,
    split_corpus,
    split_document,
)
from models.rag.evaluation import (
    QuestionResult,
    evaluate,
    ndcg_at_k,
    recall_at_k,
    recall_curve,
    reciprocal_rank,
)
from models.rag.features import RagQuery
from models.rag.labels import Anchor, Question, load_questions, locate, resolve
from models.rag.predictor import RagPredictor
from models.rag.retriever import BM25Index, RetrieverConfig, Tokenizer
from models.rag.train import sweep_configs
from tracking import IntegrityError, InvalidInput
from tracking.flavors import RetrieverIndex, load_retriever

DOC = Document(
    source="guide.md",
    text=(
        "# Intro\n\none two three four five six seven eight nine ten\n\n"
        "```bash\n# not a heading\nrun it\n```\n\n"
        "## Deploy\n\nalpha beta gamma delta epsilon\n"
    ),
)
#: Every chunking the sweep and the default use, plus extremes.
CHUNKINGS = sorted(
    {(c.chunk_size, c.overlap) for c in [RetrieverConfig(), *sweep_configs(RetrieverConfig())]}
    | {(10, 0), (10, 9), (25, 5), (400, 50), (2000, 0)}
)


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return load_corpus(CORPUS_DIR)


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return load_questions(QUESTIONS_PATH)


@pytest.fixture(scope="module")
def index(documents: list[Document]) -> BM25Index:
    config = RetrieverConfig()
    return BM25Index.build(split_corpus(documents, config.chunk_size, config.overlap), config)


# -- splitting and ids --------------------------------------------------------------------------


def test_sections_skip_code_fences() -> None:
    found = [heading for _, _, heading in sections(DOC.text)]
    assert found == ["Intro", "Deploy"]
    starts = [start for start, _, _ in sections(DOC.text)]
    assert DOC.text[starts[1] :].startswith("## Deploy")


def test_split_by_words_with_overlap() -> None:
    chunks = split_document(DOC, chunk_size=4, overlap=1)
    words = [chunk.text.split() for chunk in chunks]
    # Intro section: "# Intro one ... ten ```bash # not a heading run it ```" = 20 words.
    assert words[0] == ["#", "Intro", "one", "two"]
    assert words[1] == ["two", "three", "four", "five"]  # one word shared
    assert all(len(w) <= 4 for w in words)
    assert all(chunk.text == DOC.text[chunk.start : chunk.end] for chunk in chunks)
    assert all(chunk.id == passage_id(DOC.source, chunk.start, chunk.end) for chunk in chunks)
    # No passage crosses the Deploy heading, and the last one of a section ends at its last word.
    deploy = [c for c in chunks if c.section == "Deploy"]
    assert deploy[0].text.startswith("## Deploy")
    assert deploy[-1].text.endswith("epsilon")
    assert all("Deploy" not in c.text for c in chunks if c.section == "Intro")


def test_every_word_is_covered_and_no_passage_is_redundant() -> None:
    text_words = [m.span() for m in re.finditer(r"\S+", DOC.text)]
    for chunk_size, overlap in [(1, 0), (3, 2), (4, 1), (7, 3), (50, 10)]:
        chunks = split_document(DOC, chunk_size, overlap)
        for start, end in text_words:
            assert any(c.start <= start and end <= c.end for c in chunks), (chunk_size, overlap)
        for previous, current in itertools.pairwise(chunks):
            assert current.end > previous.end  # never wholly inside the one before


def test_ids_are_stable_and_unique(documents: list[Document]) -> None:
    for chunk_size, overlap in CHUNKINGS:
        first = split_corpus(documents, chunk_size, overlap)
        again = split_corpus(load_corpus(CORPUS_DIR), chunk_size, overlap)
        assert [c.id for c in first] == [c.id for c in again]
        assert len({c.id for c in first}) == len(first)
    assert split_document(DOC, 4, 1)[0].id == "guide.md:0-16"  # "# Intro\n\none two"


@pytest.mark.parametrize(("chunk_size", "overlap"), [(0, 0), (5, 5), (5, -1), (5, 9)])
def test_bad_chunking_is_refused(chunk_size: int, overlap: int) -> None:
    with pytest.raises(InvalidInput, match="chunk_size"):
        split_document(DOC, chunk_size, overlap)
    with pytest.raises(InvalidInput):
        RetrieverConfig(chunk_size=chunk_size, overlap=overlap)


def test_corpus_snapshot_is_the_documented_one(documents: list[Document]) -> None:
    assert [d.source for d in documents] == [
        "README.md", "api_documentation.md", "architecture.md", "aws_deployment.md", "sdk.md",
        "security.md",
    ]  # fmt: skip
    assert corpus_digest(documents) == corpus_digest(load_corpus(CORPUS_DIR))
    changed = [Document(documents[0].source, documents[0].text + " "), *documents[1:]]
    assert corpus_digest(changed) != corpus_digest(documents)


# -- labels -------------------------------------------------------------------------------------


def test_question_set(questions: list[Question]) -> None:
    assert len(questions) >= 50
    assert len({q.id for q in questions}) == len(questions)
    assert len({q.question for q in questions}) == len(questions)
    splits = [q.split for q in questions]
    assert abs(splits.count("dev") - splits.count("test")) <= 1
    # Questions are written, not copied: none contains its own answer's quote.
    assert all(a.quote not in q.question for q in questions for a in q.answers)
    assert sum(len(q.answers) > 1 for q in questions) >= 5
    sources = {a.source for q in questions for a in q.answers}
    assert len(sources) == 6  # every document is asked about


@pytest.mark.parametrize(("chunk_size", "overlap"), CHUNKINGS)
def test_every_label_resolves_for_every_chunking(
    documents: list[Document], questions: list[Question], chunk_size: int, overlap: int
) -> None:
    by_source = {d.source: d for d in documents}
    chunks = split_corpus(documents, chunk_size, overlap)
    by_id = {c.id: c for c in chunks}
    for question in questions:
        groups = resolve(question, by_source, chunks)
        assert len(groups) == len(question.answers)
        for anchor, group in zip(question.answers, groups, strict=True):
            start, end = locate(anchor, by_source)
            # A point is in at most ceil(chunk / step) passages of a section (1 without overlap).
            assert 1 <= len(group) <= math.ceil(chunk_size / (chunk_size - overlap))
            for passage in (by_id[i] for i in group):
                assert passage.source == anchor.source
                assert passage.start < end
                assert start < passage.end


def test_anchor_middle_on_a_gap_between_passages() -> None:
    doc = Document("d.md", "aa bb cc dd")
    chunks = split_document(doc, 2, 0)  # "aa bb" and "cc dd": the space at 5 is in neither
    question = Question("q", "?", (Anchor("d.md", "bb cc"),), "dev")
    # The middle of "bb cc" (offsets 3-8) is the space at 5; the next word's passage answers.
    assert resolve(question, {"d.md": doc}, chunks) == (frozenset({"d.md:6-11"}),)


@pytest.mark.parametrize(
    ("anchor", "message"),
    [
        (Anchor("missing.md", "x"), "not in the corpus"),
        (Anchor("guide.md", "zeta"), "does not occur"),
        (Anchor("guide.md", "#"), "more than once"),
        (Anchor("guide.md", " two"), "space"),
    ],
)
def test_bad_anchors_are_refused(anchor: Anchor, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        locate(anchor, {"guide.md": DOC})


def test_malformed_question_files(tmp_path: Path) -> None:
    good = {"id": "a", "question": "q?", "answers": [{"source": "s", "quote": "x"}]}
    for lines, message in [
        (["{nope"], "malformed"),
        ([json.dumps({"id": "a", "question": "q?"})], "malformed"),
        ([json.dumps(good), json.dumps(good)], "duplicate"),
        ([json.dumps({**good, "answers": []})], "no question/answers"),
    ]:
        path = tmp_path / "q.jsonl"
        path.write_text("\n".join(lines))
        with pytest.raises(InvalidInput, match=message):
            load_questions(path)


# -- metrics, on hand-computed cases --------------------------------------------------------------


def test_one_relevant_passage() -> None:
    ranked, groups = ["a", "b", "c", "d"], [frozenset({"c"})]
    assert [recall_at_k(ranked, groups, k) for k in (1, 2, 3, 10)] == [0.0, 0.0, 1.0, 1.0]
    assert reciprocal_rank(ranked, groups) == pytest.approx(1 / 3)
    assert ndcg_at_k(ranked, groups, 10) == pytest.approx(1 / math.log2(4))  # = 0.5
    assert ndcg_at_k(ranked, groups, 2) == 0.0


def test_two_answer_groups() -> None:
    ranked, groups = ["x", "a", "y", "d"], [frozenset({"a"}), frozenset({"d"})]
    assert [recall_at_k(ranked, groups, k) for k in (1, 2, 4)] == [0.0, 0.5, 1.0]
    assert reciprocal_rank(ranked, groups) == 0.5
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(ranked, groups, 10) == pytest.approx(dcg / ideal)  # 0.7967...
    assert ndcg_at_k(["a", "d"], groups, 10) == pytest.approx(1.0)


def test_overlapping_copies_of_one_answer_count_once() -> None:
    groups = [frozenset({"p1", "p2"})]  # one span held by two overlapping passages
    assert recall_at_k(["p2", "p1"], groups, 1) == 1.0
    assert ndcg_at_k(["p1", "p2"], groups) == pytest.approx(1.0)
    assert ndcg_at_k(["z", "p2", "p1"], groups) == pytest.approx(1 / math.log2(3))
    # One passage answering two groups gains once: rank 1 gives 1, not 1 + 1/log2(3).
    both = [frozenset({"p"}), frozenset({"p", "q"})]
    assert ndcg_at_k(["p"], both) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert recall_at_k(["p"], both, 1) == 1.0


def test_nothing_relevant_retrieved_and_bad_groups() -> None:
    groups = [frozenset({"a"})]
    assert (recall_at_k([], groups, 5), reciprocal_rank(["b"], groups), ndcg_at_k([], groups)) == (
        0.0, 0.0, 0.0,
    )  # fmt: skip
    for bad in ([], [frozenset()]):
        with pytest.raises(ValueError, match="answer group"):
            recall_at_k(["a"], bad, 1)


def test_evaluate_averages_over_questions() -> None:
    results = [
        QuestionResult("q1", ("a", "b"), (frozenset({"a"}),)),  # rank 1
        QuestionResult("q2", ("b", "c", "x", "a"), (frozenset({"a"}),)),  # rank 4
    ]
    metrics = evaluate(results)
    assert metrics["recall_at_1"] == 0.5
    assert metrics["recall_at_3"] == 0.5
    assert metrics["recall_at_5"] == 1.0
    assert metrics["mrr"] == pytest.approx((1 + 1 / 4) / 2)
    assert metrics["ndcg_at_10"] == pytest.approx((1 + 1 / math.log2(5)) / 2)
    assert recall_curve(metrics) == {1: 0.5, 3: 0.5, 5: 1.0, 10: 1.0}
    assert results[1].first_relevant_rank == 4
    with pytest.raises(ValueError, match="no questions"):
        evaluate([])


# -- tokenizer and scoring ------------------------------------------------------------------------


def test_tokenizer_options() -> None:
    text = "How do I set TRACKING_URI? Promotions are checked with SHA-256."
    assert Tokenizer(RetrieverConfig())(text) == [
        "set", "tracking_uri", "track", "uri", "trackinguri", "promot", "check", "sha-256",
        "sha", "256", "sha256",
    ]  # fmt: skip
    plain = RetrieverConfig(stemmer="none", stopwords="none", split_compounds=False)
    assert Tokenizer(plain)(text) == [
        "how", "do", "set", "tracking_uri", "promotions", "are", "checked", "with", "sha-256",
    ]  # fmt: skip
    assert Tokenizer(RetrieverConfig(stopwords="lucene"))("how are you")[:1] == ["how"]


@pytest.mark.parametrize("method", ["lucene", "robertson", "bm25+"])
def test_numpy_scores_match_bm25s(documents: list[Document], method: str) -> None:
    import bm25s

    config = RetrieverConfig(method=method)  # type: ignore[arg-type]
    chunks = split_corpus(documents, config.chunk_size, config.overlap)
    ours = BM25Index.build(chunks, config)
    tokenize = Tokenizer(config)
    reference = bm25s.BM25(k1=config.k1, b=config.b, method=method, csc_backend="numpy")
    reference.index(
        [tokenize(f"{c.section}\n{c.text}") or [""] for c in chunks],
        create_empty_token=False, show_progress=False,
    )  # fmt: skip
    for query in ("roll back production", "sha256 artifact verified", "uvicorn workers stall"):
        expected = reference.get_scores(tokenize(query))
        np.testing.assert_allclose(ours.scores(query)[0], expected, rtol=1e-6)


def test_search_returns_only_matching_passages_deterministically(index: BM25Index) -> None:
    hits = index.search("rollback", 50)
    assert hits
    assert all("rollback" in Tokenizer(index.config)(f"{c.section} {c.text}") for c, _ in hits)
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)
    assert index.search("rollback", 50) == hits
    assert index.search("rollback", 2) == hits[:2]
    assert index.search("what is the", 5) == []  # stop words only
    assert index.search("zzzunknownzzz", 5) == []


# -- the bundle: save, load, no pickle ------------------------------------------------------------


def test_round_trip_without_pickle(index: BM25Index, tmp_path: Path) -> None:
    path = index.save(tmp_path / "rag_index.npz")
    # Every member is a plain .npy of numbers (or the uint8 manifest) that NumPy reads with
    # allow_pickle=False; nothing in the file can run code when loaded.
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert names == ["data.npy", "indices.npy", "indptr.npy", "manifest.npy"]
        for name in names:
            array = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
            assert array.dtype.kind in "iuf"
    loaded = BM25Index.load(path)
    assert loaded.config == index.config
    assert [c.id for c in loaded.passages] == [c.id for c in index.passages]
    for query in ("how do I promote a model", "TRACKING_URI default", "cost of lambda"):
        assert loaded.search(query, 10) == index.search(query, 10)
    assert index.save(tmp_path / "again.npz").read_bytes() == path.read_bytes()


def test_loading_refuses_a_pickled_object_array(index: BM25Index, tmp_path: Path) -> None:
    path = index.save(tmp_path / "rag_index.npz")
    evil = tmp_path / "evil.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(evil, "w") as new:
        for name in old.namelist():
            new.writestr(name, buffer.getvalue() if name == "data.npy" else old.read(name))
    with pytest.raises(InvalidInput, match="without pickle"):
        BM25Index.load(evil)
    with pytest.raises(InvalidInput, match="without pickle"):
        RagPredictor.from_path(evil)


def test_bm25s_own_save_format_is_not_pickle(tmp_path: Path) -> None:
    """What bm25s.BM25.save writes (checked, so the flavor's claim about the library holds)."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index([["alpha", "beta"], ["beta", "gamma"]], show_progress=False)
    retriever.save(tmp_path / "bm25s")
    files = sorted(p.name for p in (tmp_path / "bm25s").iterdir())
    assert files == [
        "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy",
        "params.index.json", "vocab.index.json",
    ]  # fmt: skip
    for name in files:
        if name.endswith(".npy"):
            assert np.load(tmp_path / "bm25s" / name, allow_pickle=False).dtype != object
        else:
            json.loads((tmp_path / "bm25s" / name).read_text())


def test_inconsistent_bundles_are_refused(index: BM25Index, tmp_path: Path) -> None:
    bundle = load_retriever(index.save(tmp_path / "i.npz"))
    wrong_kind = RetrieverIndex({**bundle.manifest, "kind": "tfidf"}, bundle.arrays)
    with pytest.raises(InvalidInput, match="not bm25"):
        BM25Index.from_bundle(wrong_kind)
    broken = dict(bundle.arrays)
    broken["indices"] = broken["indices"] + len(index.passages)  # points past the passages
    with pytest.raises(InvalidInput, match="do not match"):
        BM25Index.from_bundle(RetrieverIndex(bundle.manifest, broken))
    no_config = {k: v for k, v in bundle.manifest.items() if k != "config"}
    with pytest.raises(InvalidInput, match="malformed"):
        BM25Index.from_bundle(RetrieverIndex(no_config, bundle.arrays))
    unknown = {**bundle.manifest, "config": {**bundle.manifest["config"], "exotic": 1}}
    with pytest.raises(InvalidInput, match="unknown retriever settings"):
        BM25Index.from_bundle(RetrieverIndex(unknown, bundle.arrays))


# -- predictor and schemas ------------------------------------------------------------------------


def test_predictor_from_a_verified_file(index: BM25Index, tmp_path: Path) -> None:
    path = index.save(tmp_path / "rag_index.npz")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    predictor = RagPredictor.from_path(path, sha256=digest, label="v7")
    passages = predictor.predict("how do I roll back production", 3)
    assert 1 <= len(passages) <= 3
    assert {"id", "score", "text", "source"} <= set(passages[0].model_dump())
    assert passages[0].score >= passages[-1].score
    assert passages[0].text in (CORPUS_DIR / passages[0].source).read_text()
    answer = predictor.respond(RagQuery(query="how do I roll back production", k=3))
    assert answer.model_version == "v7"
    assert answer.passages == passages
    assert predictor.predict_records([RagQuery(query="rollback", k=2)])[0]["model_version"] == "v7"
    assert predictor.warm_up().passages
    with pytest.raises(IntegrityError):
        RagPredictor.from_path(path, sha256="0" * 64)


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "x" * 1001},
        {"query": "ok", "k": 0},
        {"query": "ok", "k": 51},
        {"query": "ok", "k": "5"},
        {"query": "ok", "k": 2.5},
        {"query": "ok", "k": True},
        {"query": 5},
        {"query": "ok", "top": 3},
        {},
    ],
)
def test_bad_queries_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RagQuery.model_validate(body)


def test_query_defaults() -> None:
    assert RagQuery.model_validate({"query": "promote"}).k == 5
    assert RagQuery.model_validate({"query": "x" * 1000, "k": 50}).k == 50
