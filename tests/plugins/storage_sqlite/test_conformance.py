"""`sqlite://` passes the storage conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.testing.conformance import StorageConformance

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop


class TestSQLiteStorageConformance(StorageConformance):
    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/conformance.db"
