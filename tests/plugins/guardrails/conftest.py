"""Every test gets guardrails turned on with its own configuration, and off again afterwards.

The plugin keeps its configuration in module state (read from the environment once); each test
leaves that state as it found it, so later tests in the same process (`tests_all`) run unguarded
when `GECKO_GUARDRAILS=0` says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gecko_guardrails import Finding, Guardrails, configure
from gecko_guardrails import guard as guard_module


@pytest.fixture(autouse=True)
def configuration_restored() -> Iterator[None]:
    saved = guard_module._active, guard_module._from_env
    try:
        yield
    finally:
        guard_module._active, guard_module._from_env = saved


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
