"""The builtin `memory://` store passes the vector store conformance suite."""

from __future__ import annotations

import pytest

from gecko.testing.conformance import VectorStoreConformance


class TestMemoryVectorStoreConformance(VectorStoreConformance):
    @pytest.fixture
    def vector_url(self) -> str:
        return "memory://"
