"""Tampered checkpoints stored in `sqlite://` end in typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.testing.conformance import CheckpointIntegrityConformance

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop


class TestSQLiteCheckpointIntegrity(CheckpointIntegrityConformance):
    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/checkpoints.db"
