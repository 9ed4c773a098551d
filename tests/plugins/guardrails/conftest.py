"""Every test gets guardrails turned on with its own configuration, and off again afterwards.

The plugin keeps its configuration in module state (read from the environment once); each test
leaves that state as it found it, so later tests in the same process (`tests_all`) run unguarded
when `GECKO_GUARDRAILS=0` says so.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
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


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """DNS replaced: every name resolves to the public 93.184.215.14, except `*.loopback.test` (127.0.0.1) and
    `*.down.test` (the resolver fails); the names asked for are recorded."""
    asked: list[str] = []

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        if host.endswith(".down.test"):
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        address = "127.0.0.1" if host.endswith(".loopback.test") else "93.184.215.14"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(anyio, "getaddrinfo", getaddrinfo)
    return asked
