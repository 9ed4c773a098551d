"""memory://, chroma:// and lancedb:// give the same ranking and scores (within 1e-4) for the same data."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.plugins.storage.factory import create_storage
from gecko.plugins.vector import VectorHit
from gecko.testing.conformance.vector import sample_records

pytestmark = pytest.mark.anyio

QUERIES = [
    ([0.3, -0.2, 0.9, 0.1, 0.0, -0.7, 0.4, 0.2], None),
    ([-0.5, 0.5, 0.1, 0.8, -0.3, 0.2, 0.0, 0.6], {"lang": "zh", "year": {"$gte": 2010}}),
    ([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, -0.9], {"$or": [{"tags": {"$contains": "t2"}}, {"flag": False}]}),
]


async def _answers(url: str) -> list[list[VectorHit]]:
    async with await create_storage(url, kind="vector") as store:
        docs = store.collection("docs")
        await docs.upsert(sample_records(300, seed=21))
        return [await docs.query(vector, top_k=5, where=where) for vector, where in QUERIES]


async def test_three_backends_agree_on_ranking_and_scores(tmp_path: Path) -> None:
    memory = await _answers("memory://")
    for url in (f"chroma://{tmp_path}/chroma", f"lancedb://{tmp_path}/lance"):
        other = await _answers(url)
        for expected, got in zip(memory, other, strict=True):
            assert len(got) == 5
            assert [hit.id for hit in got] == [hit.id for hit in expected]
            assert [hit.score for hit in got] == pytest.approx([hit.score for hit in expected], abs=1e-4)
