"""`jsonvectors://` passes Gecko's vector store conformance suite, found through its own entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.plugins.vector import vector_registry
from gecko.testing.conformance import VectorStoreConformance


class TestJSONFileVectorConformance(VectorStoreConformance):
    @pytest.fixture
    def vector_url(self, tmp_path: Path) -> str:
        return f"jsonvectors://{tmp_path}/vectors.json"


def test_scheme_is_found_through_the_entry_point() -> None:
    record = next(r for r in vector_registry.records() if r.name == "jsonvectors")
    assert (record.distribution, record.status) == ("acme-gecko-jsonfile", "loaded")
