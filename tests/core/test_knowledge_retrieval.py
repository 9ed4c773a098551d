"""Retriever modes and RetrievalTool: ranking, filters, the lexical index in step, citations, budget."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gecko import AgentBuilder
from gecko.core.retrieval import RetrievalTool
from gecko.errors import ConfigurationError, InvalidFilterError, ModelConnectionError
from gecko.plugins.knowledge import BM25Index, Document, IngestionPipeline, RetrievedChunk, Retriever, lexical_tokens
from gecko.plugins.knowledge.retrieval import CJK_LEXICAL_WEIGHT, lexical_weight_for
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.embedders import HashingEmbedder
from gecko.testing.models import FunctionModel, reply, tool_calls_reply
from gecko.types import Message, ToolCall

CORPUS = [
    Document("travel.md", "Travel costs are reimbursed within 30 days of the trip.", {"lang": "en"}),
    Document("hotels.md", "Hotels are paid up to 200 EUR per night in every city.", {"lang": "en"}),
    Document("office.md", "The office opens at 9 am and parking is free for staff.", {"lang": "en"}),
    Document("policy-zh.txt", "公司的报销政策：员工出差费用在三十天内报销，需要提供发票。", {"lang": "zh"}),
    Document("canteen-zh.txt", "食堂午餐时间为十二点到一点，周末不开放。", {"lang": "zh"}),
]


async def knowledge_base() -> tuple[MemoryStorage, HashingEmbedder]:
    store, embedder = MemoryStorage(), HashingEmbedder()
    await IngestionPipeline(store, embedder).run(CORPUS)
    return store, embedder


def test_lexical_tokens_are_word_stems_and_cjk_bigrams() -> None:
    assert lexical_tokens("The Ｈotel costs 200 EUR") == ["hotel", "cost", "200", "eur"]
    assert lexical_tokens("报销政策，发票") == ["报销", "销政", "政策", "发票"]
    assert lexical_tokens("用AI写代码") == ["用", "ai", "写代", "代码"]


def test_english_words_match_across_inflections_and_other_words_are_kept_whole() -> None:
    assert lexical_tokens("studies of infected cells") == lexical_tokens("study infect cell")
    assert lexical_tokens("generously running") == ["generous", "run"]
    assert lexical_tokens("p53 Ärzte naïve 2021") == ["p53", "ärzte", "naïve", "2021"]


def test_bm25_prefers_rare_terms_and_shorter_documents() -> None:
    index = BM25Index()
    index.add("common", ["hotel", "night"], {})
    index.add("rare", ["hotel", "invoice"], {})
    index.add("long", ["hotel", "invoice", *["filler"] * 20], {})
    hits = index.search(["invoice", "hotel"], 3)
    assert [hit.id for hit in hits] == ["rare", "long", "common"]
    assert index.search(["absent"], 3) == []


@pytest.mark.parametrize(
    ("mode", "query", "source"),
    [
        ("dense", "when are travel costs reimbursed", "travel.md"),
        ("lexical", "hotels per night", "hotels.md"),
        ("hybrid", "报销政策", "policy-zh.txt"),
        ("hybrid", "parking for staff", "office.md"),
        ("lexical", "食堂午餐", "canteen-zh.txt"),
    ],
)
async def test_each_mode_ranks_the_matching_chunk_first(mode: str, query: str, source: str) -> None:
    store, embedder = await knowledge_base()
    results = await Retriever(store, embedder).search(query, 3, mode=mode)  # type: ignore[arg-type]
    assert isinstance(results[0], RetrievedChunk)
    assert results[0].source == source
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


@pytest.mark.parametrize(
    ("query", "lexical_weight", "expected_weight"),
    [
        ("hotel reimbursed", None, 1.0),
        ("出差 报销 发票", None, CJK_LEXICAL_WEIGHT),
        ("用AI写代码", None, CJK_LEXICAL_WEIGHT),
        ("报销 the hotel invoice costs", None, 1.0),
        ("hotel reimbursed", 2.5, 2.5),
        ("出差 报销", 0.0, 0.0),
    ],
)
async def test_hybrid_fuses_by_weighted_reciprocal_rank(
    query: str, lexical_weight: float | None, expected_weight: float
) -> None:
    store, embedder = await knowledge_base()
    retriever = Retriever(store, embedder, rrf_k=60, lexical_weight=lexical_weight)
    dense = await retriever.search(query, 5, mode="dense")
    lexical = await retriever.search(query, 5, mode="lexical")
    fused = await retriever.search(query, 5)
    expected: dict[str, float] = {}
    for ranking, weight in ((dense, 1.0), (lexical, expected_weight)):
        for rank, chunk in enumerate(ranking, start=1):
            expected[chunk.id] = expected.get(chunk.id, 0.0) + weight / (60 + rank)
    assert [(c.id, pytest.approx(c.score)) for c in fused] == sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))


def test_the_default_lexical_weight_follows_the_querys_script() -> None:
    assert CJK_LEXICAL_WEIGHT > 1.0
    assert lexical_weight_for("公司的报销政策是怎样的？") == CJK_LEXICAL_WEIGHT
    assert lexical_weight_for("What is the reimbursement policy?") == 1.0
    assert lexical_weight_for("") == 1.0


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_a_lexical_weight_that_is_not_a_finite_non_negative_number_is_refused(weight: float) -> None:
    with pytest.raises(ConfigurationError, match="lexical_weight"):
        Retriever(MemoryStorage(), HashingEmbedder(), lexical_weight=weight)


async def test_filters_apply_in_every_mode() -> None:
    store, embedder = await knowledge_base()
    retriever = Retriever(store, embedder, filter={"lang": "zh"})
    for mode in ("dense", "lexical", "hybrid"):
        results = await retriever.search("reimbursed 报销", 5, mode=mode)  # type: ignore[arg-type]
        assert results
        assert {r.metadata["lang"] for r in results} == {"zh"}
    with pytest.raises(InvalidFilterError):
        await retriever.search("x", filter={"lang": {"$bogus": 1}})


async def test_a_live_retriever_sees_later_ingestion_and_deletion() -> None:
    store, embedder = await knowledge_base()
    retriever = Retriever(store, embedder, mode="lexical")
    assert await retriever.search("gecko lizard", 1) == []
    pipeline = IngestionPipeline(store, embedder)
    await pipeline.run([Document("gecko.md", "A gecko is a small lizard.")])
    assert (await retriever.search("gecko lizard", 1))[0].source == "gecko.md"
    await pipeline.delete("gecko.md")
    assert await retriever.search("gecko lizard", 1) == []


class UnreachableEmbedder(HashingEmbedder):
    """Embeds passages, but its query endpoint is down (the remote API edge failing)."""

    async def embed_query(self, text: str) -> list[float]:
        raise ModelConnectionError("embedding service unreachable")


async def test_a_failing_query_embedding_fails_hybrid_search_with_its_own_error() -> None:
    store, _ = await knowledge_base()
    retriever = Retriever(store, UnreachableEmbedder())
    with pytest.raises(ModelConnectionError, match="unreachable"):
        await retriever.search("hotel reimbursed")
    assert (await retriever.search("hotel reimbursed", mode="lexical"))[0].source in {"hotels.md", "travel.md"}


async def test_dense_search_needs_the_embedder_and_bad_settings_are_refused() -> None:
    store, _ = await knowledge_base()
    with pytest.raises(ConfigurationError, match="embedder"):
        await Retriever(store).search("hotels")
    assert (await Retriever(store, mode="lexical").search("hotels"))[0].source == "hotels.md"
    with pytest.raises(ConfigurationError, match="mode"):
        Retriever(store, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="top_k"):
        await Retriever(store, mode="lexical").search("hotels", 0)


async def test_retrieval_tool_cites_source_and_id_and_marks_the_content_untrusted() -> None:
    store, embedder = await knowledge_base()
    rag_tool = RetrievalTool(vector_store=store, embedder=embedder, top_k=2)
    answer = json.loads(await rag_tool(query="报销政策"))
    assert (answer["content_origin"], answer["trust"]) == ("retrieved", "untrusted")
    first = answer["chunks"][0]
    assert first["source"] == "policy-zh.txt"
    assert [r.id for r in await store.collection("knowledge").get([first["id"]])] == [first["id"]]
    assert RetrievalTool.content_origin == "retrieved"
    assert rag_tool.definition().parameters["required"] == ["query"]


@given(budget=st.integers(400, 1200), size=st.sampled_from([len, lambda text: len(text.encode())]))
@settings(max_examples=40, deadline=None)
def test_the_answer_never_exceeds_the_budget(budget: int, size: object) -> None:
    tool = RetrievalTool(MemoryStorage(), HashingEmbedder(), budget=budget, measure=size)  # type: ignore[arg-type]
    chunks = [RetrievedChunk(f"id{i}", "报销 policy text " * (i * 20 + 1), f"s{i}", 1.0, {}) for i in range(6)]
    answer = tool.fit(chunks)
    assert size(answer) <= budget  # type: ignore[operator]
    parsed = json.loads(answer)
    assert parsed["chunks"]
    assert len(parsed["chunks"]) + parsed["omitted"] == 6


def test_a_budget_without_room_for_text_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="budget"):
        RetrievalTool(MemoryStorage(), HashingEmbedder(), budget=50)


async def test_an_agent_calls_the_retrieval_tool_and_reads_the_chunks() -> None:
    store, embedder = await knowledge_base()
    seen: list[str] = []

    def model(request: ModelRequest) -> ModelResponse:
        last = request.messages[-1]
        if last.role.value == "tool":
            seen.append(last.text)
            return reply("Travel is reimbursed within 30 days [travel.md].")
        return tool_calls_reply(ToolCall(id="c1", name="search_knowledge", arguments='{"query": "travel reimbursed"}'))

    agent = (
        AgentBuilder()
        .with_model(FunctionModel(model))
        .with_tools([RetrievalTool(vector_store=store, embedder=embedder, top_k=3)])
        .build()
    )
    output = await agent.run(Message.user("How fast is travel reimbursed?"))
    assert "30 days" in output.content
    assert json.loads(seen[0])["chunks"][0]["source"] == "travel.md"


def characters(text: str) -> list[str]:
    """A second tokenizer: every letter its own term."""
    return [character for character in text.casefold() if character.isalnum()]


async def test_another_tokenizer_retokenizes_the_base_and_retrievers_must_match() -> None:
    store, embedder = await knowledge_base()
    texts = embedder.texts
    summary = await IngestionPipeline(store, embedder, tokenizer=characters).run(CORPUS)
    assert (summary.skipped, summary.embedded, embedder.texts) == (0, 0, texts)  # re-tokenized, not re-embedded
    lexical = await store.collection("knowledge__lexical").get()
    assert all(len(term) == 1 for record in lexical for term in record.text.split())
    assert (await Retriever(store, embedder, tokenizer=characters).search("食堂", 1, mode="lexical"))[0].source == (
        "canteen-zh.txt"
    )
    with pytest.raises(ConfigurationError, match="tokenized by"):
        await Retriever(store, embedder).search("食堂", 1, mode="lexical")


def test_the_facade_resolves_the_engine_layer_classes_lazily() -> None:
    import gecko.plugins.knowledge as knowledge
    from gecko.core.long_term_memory import LongTermMemory

    assert knowledge.RetrievalTool is RetrievalTool
    assert knowledge.LongTermMemory is LongTermMemory
    assert set(knowledge.__all__) <= set(dir(knowledge)) | {"RetrievalTool", "LongTermMemory"}
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = knowledge.NoSuchThing
