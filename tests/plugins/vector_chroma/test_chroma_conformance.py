"""`chroma://` (local, persistent) and `chroma+http://` (a real server) pass the vector store suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.testing.conformance import VectorStoreConformance


class TestChromaLocalConformance(VectorStoreConformance):
    @pytest.fixture
    def vector_url(self, tmp_path: Path) -> str:
        return f"chroma://{tmp_path}/db"


class TestChromaHttpConformance(VectorStoreConformance):
    @pytest.fixture
    def vector_url(self, chroma_server: str, chroma_database: str) -> str:
        return f"chroma+http://{chroma_server}?database={chroma_database}"
