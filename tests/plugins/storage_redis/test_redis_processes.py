"""Many real processes against one Redis: compare-and-set never loses an increment."""

from __future__ import annotations

import sys

import anyio

from gecko.plugins.storage.factory import create_storage

WORKER = """
import sys, anyio
from gecko.errors import VersionConflictError
from gecko.plugins.storage.factory import create_storage

async def main(url, rounds):
    async with await create_storage(url) as storage:
        for _ in range(rounds):
            while True:
                current = await storage.get_versioned("counter")
                value, version = (0, None) if current is None else current
                try:
                    await storage.compare_and_set("counter", value + 1, expected_version=version)
                    break
                except VersionConflictError:
                    continue

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""


async def test_four_processes_of_500_compare_and_set_increments_end_at_2000(redis_url: str) -> None:
    workers = [await anyio.open_process([sys.executable, "-c", WORKER, redis_url, "500"]) for _ in range(4)]
    codes = [await worker.wait() for worker in workers]
    assert codes == [0, 0, 0, 0]
    async with await create_storage(redis_url) as storage:
        assert await storage.get("counter") == 2000
