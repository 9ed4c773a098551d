"""The knowledge layer over a Chroma directory: idempotent ingestion and the three retrieval modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.plugins.knowledge import Document, IngestionPipeline, Retriever
from gecko.plugins.storage.factory import create_storage
from gecko.testing.embedders import HashingEmbedder

pytestmark = pytest.mark.anyio

DOCUMENTS = [
    Document("travel.md", "Travel costs are reimbursed within 30 days of the trip.", {"lang": "en"}),
    Document("hotels.md", "Hotels are paid up to 200 EUR per night.", {"lang": "en"}),
    Document("policy.txt", "公司的报销政策：员工出差费用在三十天内报销，需要提供发票。", {"lang": "zh"}),
]


async def test_ingest_once_and_search_every_mode_over_chroma(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    async with await create_storage(f"chroma://{tmp_path}/kb", kind="vector") as store:
        assert (await IngestionPipeline(store, embedder).run(DOCUMENTS)).embedded == 3
    async with await create_storage(f"chroma://{tmp_path}/kb", kind="vector") as store:
        calls = embedder.calls
        assert (await IngestionPipeline(store, embedder).run(DOCUMENTS)).skipped == 3
        assert embedder.calls == calls
        retriever = Retriever(store, embedder)
        for mode in ("dense", "lexical", "hybrid"):
            [best] = await retriever.search("报销政策", 1, mode=mode)
            assert best.source == "policy.txt"
        hits = await retriever.search("reimbursed", 3, filter={"lang": "en"})
        assert hits[0].source == "travel.md"
        assert {hit.metadata["lang"] for hit in hits} == {"en"}
