"""Real processes sharing one database file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from gecko.plugins.storage import Versioned
from gecko.plugins.storage.factory import create_storage

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop

_INCREMENT = textwrap.dedent(
    """
    import sys
    import anyio
    from gecko.errors import VersionConflictError
    from gecko.plugins.storage.factory import create_storage

    async def main(url: str, count: int) -> None:
        async with await create_storage(url) as store:
            for _ in range(count):
                while True:
                    current = await store.get_versioned("counter")
                    try:
                        if current is None:
                            await store.compare_and_set("counter", 1, expected_version=None)
                        else:
                            await store.compare_and_set("counter", current.value + 1, expected_version=current.version)
                    except VersionConflictError:
                        continue
                    break

    anyio.run(main, sys.argv[1], int(sys.argv[2]))
    """
)

_WRITE = textwrap.dedent(
    """
    import sys
    import anyio
    from gecko.plugins.storage.factory import create_storage

    async def main(url: str) -> None:
        async with await create_storage(url) as store:
            await store.set("session/1", {"text": "héllo 世界 🦎", "items": [1, 2.5, None, True]})

    anyio.run(main, sys.argv[1])
    """
)


async def _read(url: str, key: str) -> Versioned | None:
    async with await create_storage(url) as store:
        return await store.get_versioned(key)


@pytest.mark.slow
def test_four_processes_incrementing_one_key_with_compare_and_set_end_at_2000(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/counter.db"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _INCREMENT, url, "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outcomes = [(worker.wait(timeout=600), worker.communicate()) for worker in workers]
    for status, (_out, err) in outcomes:
        assert "locked" not in err
        assert status == 0, err
    assert anyio.run(_read, url, "counter") == (2000, 2000)


def test_data_written_by_one_process_is_read_after_it_exits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/restart.db"
    subprocess.run([sys.executable, "-c", _WRITE, url], check=True, timeout=120)
    assert anyio.run(_read, url, "session/1") == ({"text": "héllo 世界 🦎", "items": [1, 2.5, None, True]}, 1)
