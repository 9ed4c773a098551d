"""`lancedb://` passes the vector store suite, with exact search and with its ANN index."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.testing.conformance import VectorStoreConformance


class TestLanceDBConformance(VectorStoreConformance):
    @pytest.fixture
    def vector_url(self, tmp_path: Path) -> str:
        return f"lancedb://{tmp_path}/db"
