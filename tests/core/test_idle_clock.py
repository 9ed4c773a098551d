"""The `idle_clock` marker (tests/conftest.py): time stands still while a task can run and jumps to
the next timer once every task waits, on asyncio and trio alike."""

from __future__ import annotations

import time

import anyio
import pytest


@pytest.mark.idle_clock
async def test_a_timer_fires_only_once_every_task_waits() -> None:
    start = anyio.current_time()
    with anyio.move_on_after(0.001) as scope:
        for _ in range(10_000):  # busy for far longer than 1 ms of real time, yielding all along
            await anyio.lowlevel.checkpoint()
    assert not scope.cancelled_caught
    assert anyio.current_time() == start
    with anyio.move_on_after(3600) as scope:
        await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert anyio.current_time() == pytest.approx(start + 3600)


@pytest.mark.idle_clock
async def test_without_a_timer_the_loop_waits_for_a_worker_thread() -> None:
    def nap() -> str:
        time.sleep(0.05)
        return "slept"

    assert await anyio.to_thread.run_sync(nap) == "slept"
