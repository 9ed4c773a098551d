"""Tampered checkpoints on `memory://` end in typed errors (the suite every storage backend runs)."""

from __future__ import annotations

import pytest

from gecko.testing.conformance import CheckpointIntegrityConformance


class TestMemoryCheckpointIntegrity(CheckpointIntegrityConformance):
    @pytest.fixture
    def storage_url(self) -> str:
        return "memory://"
