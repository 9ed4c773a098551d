"""Checkpoints tampered with in the SQLite file itself, below the storage API: resume refuses them
typed, runs no node, and leaves the rows as they were."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from gecko.errors import CorruptCheckpointError
from gecko.plugins.storage.factory import create_storage
from gecko.testing.conformance import CheckpointIntegrityConformance

pytestmark = pytest.mark.uvloop  # the store runs on a WorkerThread, which reaches below anyio into the loop

SESSION = "raw"
SNAPSHOT = f"gecko/workflow/ledger/{SESSION}/snapshot"

# (column, value written over the snapshot's row, what the error says)
TAMPERED: dict[str, tuple[str, object, str]] = {
    "value NaN": ("value", "NaN", "NaN is not a JSON number"),
    "value beyond float64": ("value", '{"rec": 1e999}', "beyond the range of float64"),
    "value with a lone surrogate escape": ("value", '{"run": "\\ud800"}', "holds a lone surrogate"),
    "value truncated": ("value", '{"rec": 1, "run"', "not valid JSON"),
    "value a blob": ("value", b'{"rec": 1}', "not valid JSON"),
    "value a number": ("value", 7, "is malformed|integrity check"),
    "version text": ("version", "x", "stored version of .* is 'x'"),
    "version a fraction": ("version", 1.5, "stored version of .* is 1.5"),
    "version zero": ("version", 0, "stored version of .* is 0"),
    "version negative": ("version", -3, "stored version of .* is -3"),
    "version at the counter's limit": ("version", 2**63 - 1, "stored version of .* is 9223372036854775807"),
    "version a blob": ("version", b"\x01", "stored version of .* is b'\\\\x01'"),
}


def _rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT key, value, version, expires_at FROM gecko_kv ORDER BY key").fetchall()


@pytest.mark.parametrize(("column", "value", "match"), TAMPERED.values(), ids=TAMPERED.keys())
async def test_a_checkpoint_tampered_in_the_file_is_refused_typed_and_left_as_it_was(
    tmp_path: Path, column: str, value: object, match: str
) -> None:
    path = tmp_path / "checkpoints.db"
    async with await create_storage(f"sqlite:///{path}") as storage:
        ledger = await CheckpointIntegrityConformance()._crashed(storage, SESSION)
    with sqlite3.connect(path) as connection:
        assert connection.execute(f"UPDATE gecko_kv SET {column} = ? WHERE key = ?", (value, SNAPSHOT)).rowcount == 1
    rows, runs = _rows(path), Counter(ledger.runs)
    async with await create_storage(f"sqlite:///{path}") as storage:
        with pytest.raises(CorruptCheckpointError, match=match):
            await ledger.workflow(storage).resume(SESSION)
    assert ledger.runs == runs, "a node ran from a tampered checkpoint"
    assert _rows(path) == rows, "refusing the checkpoint changed the file"
