"""`redis://` passes the storage conformance suite."""

from __future__ import annotations

import pytest

from gecko.testing.conformance import StorageConformance


class TestRedisStorage(StorageConformance):
    @pytest.fixture
    def storage_url(self, redis_url: str) -> str:
        return redis_url
