"""Tampered checkpoints stored in `redis://` end in typed errors."""

from __future__ import annotations

import pytest

from gecko.testing.conformance import CheckpointIntegrityConformance


class TestRedisCheckpointIntegrity(CheckpointIntegrityConformance):
    @pytest.fixture
    def storage_url(self, redis_url: str) -> str:
        return redis_url
