"""Workflow ownership on SQLite: a stale lease holder never commits, a second worker is turned away."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko.testing.conformance import WorkflowOwnershipConformance

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop


class TestSqliteWorkflowOwnership(WorkflowOwnershipConformance):
    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'workflow.db'}"
