"""Shared test setup: every async test runs on asyncio and on trio unless its folder narrows it.

anyio's auto mode (root pyproject.toml) runs every coroutine test; a folder whose client is
asyncio-only overrides `anyio_backend` with `params=["asyncio"]` in its own conftest.py.
Hypothesis runs without its per-example time limit and slow-data health check: on these shared
machines a busy core made correct properties fail on time alone (no timing assertions in tests).

A test marked `uvloop` runs on asyncio with uvloop's event loop too (a third backend, "uvloop"),
for code that reaches below anyio into the loop (`gecko.plugins.threads.WorkerThread`).

A test marked `idle_clock` runs on a virtual clock that jumps to the next timer whenever every task
waits: a timeout then fires only once nothing else can run, never because a loaded machine ran the
other tasks late. It suits tests of what a timeout does to work still running, without threads
(a task waiting for a worker thread counts as waiting).
"""

from __future__ import annotations

import asyncio
import selectors
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("gecko", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("gecko")


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("uvloop") is None or "anyio_backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("idle_clock") is not None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: idle_clock has its own asyncio loop, not uvloop's")
    # uvloop has no Windows build (the test dependency group leaves it out there).
    backends = ["asyncio", "trio"] if sys.platform == "win32" else ["asyncio", "uvloop", "trio"]
    # As a mark, not `metafunc.parametrize`: pytest then leaves the fixture's own params out.
    metafunc.definition.add_marker(pytest.mark.parametrize("anyio_backend", backends, indirect=True))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    name = str(request.param)
    if name == "uvloop":
        return "asyncio", {"use_uvloop": True}
    if request.node.get_closest_marker("idle_clock") is None:
        return name
    if name == "trio":
        from trio.testing import MockClock

        return name, {"clock": MockClock(autojump_threshold=0)}
    return name, {"loop_factory": _IdleClockLoop}


class _IdleClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a virtual clock, trio's `MockClock(autojump_threshold=0)` for asyncio: the
    clock stands still while tasks run, and when the loop would wait for a timer with no I/O ready it
    jumps to that timer instead."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: _IdleClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout is None or timeout <= 0:
            return ready or (super().select(timeout) if timeout is None else [])
        self._loop.now += timeout  # nothing to do until the next timer: go there at once
        return []
