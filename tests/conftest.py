"""Shared test setup: every async test runs on asyncio and on trio unless its folder narrows it.

anyio's auto mode (root pyproject.toml) runs every coroutine test; a folder whose client is
asyncio-only overrides `anyio_backend` with `params=["asyncio"]` in its own conftest.py.
Hypothesis runs without its per-example time limit and slow-data health check: on these shared
machines a busy core made correct properties fail on time alone (no timing assertions in tests).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("gecko", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("gecko")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
