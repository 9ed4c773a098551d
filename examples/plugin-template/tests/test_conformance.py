"""`jsonfile://` passes Gecko's storage conformance suite, found through its own entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.plugins.storage import storage_registry
from gecko.testing.conformance import StorageConformance


class TestJSONFileConformance(StorageConformance):
    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"jsonfile:///{tmp_path}/store.json"


def test_scheme_is_found_through_the_entry_point() -> None:
    record = next(r for r in storage_registry.records() if r.name == "jsonfile")
    assert (record.distribution, record.status) == ("acme-gecko-jsonfile", "loaded")
