"""The builtin `memory://` store passes the storage conformance suite."""

from __future__ import annotations

import pytest

from gecko.testing.conformance import StorageConformance


class TestMemoryStorageConformance(StorageConformance):
    @pytest.fixture
    def storage_url(self) -> str:
        return "memory://"
