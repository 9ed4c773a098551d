"""Shared test setup: every async test runs on asyncio and on trio unless its folder narrows it.

anyio's auto mode (root pyproject.toml) runs every coroutine test; a folder whose client is
asyncio-only overrides `anyio_backend` with `params=["asyncio"]` in its own conftest.py.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
