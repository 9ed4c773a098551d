"""Tampered checkpoints on `memory://` (the suite every storage backend runs), and values that
would change type across a checkpoint: refused up front, naming the node and the path."""

from __future__ import annotations

import pytest

from gecko.testing.conformance import CheckpointIntegrityConformance


class TestMemoryCheckpointIntegrity(CheckpointIntegrityConformance):
    @pytest.fixture
    def storage_url(self) -> str:
        return "memory://"
