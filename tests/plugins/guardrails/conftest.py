"""Every test gets guardrails turned on with its own configuration, and off again afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gecko_guardrails import Finding, Guardrails, configure


@pytest.fixture
def findings() -> list[Finding]:
    return []


@pytest.fixture
def guardrails(tmp_path: Path, findings: list[Finding]) -> Iterator[Guardrails]:
    root = tmp_path / "root"
    root.mkdir()
    guard = Guardrails(roots=(root,), on_finding=findings.append)
    previous = configure(guard)
    try:
        yield guard
    finally:
        configure(previous)
