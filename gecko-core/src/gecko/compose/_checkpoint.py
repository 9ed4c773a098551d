"""Durable workflow checkpoints: a snapshot plus a ring of journal entries, JSON only.

Layout under `gecko/workflow/<workflow>/<session>/` in any `Storage`:

- `snapshot`: the whole run (state, history, scheduler, status) as of record number `rec`;
- `journal/<slot>`: `ring` slots; entry number `e` lives in slot `e % ring` and holds the node
  completions (record number, node, output, raw state diff, jump) merged since the last entry.

A snapshot is written before the ring wraps onto entries it does not cover, so storage stays
bounded at `ring + 1` keys per session. Every write is a compare-and-set against the version
this writer last saw, so two writers of one session fail loudly instead of interleaving; a
`fence` lease, when given, is passed through to every write. Every record is sealed with a
digest, or an HMAC when a checkpoint key is set, bound to its key and version, and validated
against its stored format on load (`gecko.compose._stored`, `gecko.core._stored`).

What the journal guarantees (the engine, `gecko.compose._engine`, writes it):

- One writer per run, one write at a time, records in merge order; an entry holds every record
  merged since the previous write (group commit). Loading accepts only a gap-free run of records
  after the snapshot, so a record is never durable without every record merged before it: a
  node's completion is durable before anything that depended on it.
- Under ALWAYS a completion's successors start only once its record is durable (a run's first
  write is its snapshot); under ASYNC the writer works behind the nodes, at most `max_lag`
  records behind. Layered runs write each layer's completions before starting the next layer.
- A node whose record is durable (its write returned, or a snapshot covered it) never runs
  again on resume. A node that was running, or whose record was not yet durable, at a crash
  runs again: at-least-once, so nodes with outside effects should be idempotent.
- A write whose reply was lost and that the storage client retried meets its own commit; it is
  recognised (the key is one version on and holds exactly the value written) and accepted.
- A run that pauses, fails (a failed journal write included) or is cancelled ends with a
  snapshot of everything merged, so completed nodes stay completed even if their entry was
  never written; the run's result is returned only after its final snapshot is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gecko.compose._stored import StoredEntry, StoredSnapshot
from gecko.compose._values import restored
from gecko.core._stored import Sealer, StoredModel, open_stored
from gecko.errors import (
    CheckpointError,
    CorruptCheckpointError,
    InvalidValueError,
    StorageError,
    VersionConflictError,
)
from gecko.plugins.storage import Lease, Storage, Versioned, encode_value

__all__ = ("FORMAT", "Checkpoint", "CheckpointStore")

# 2: every record carries an integrity seal (`gecko.core._stored`).
FORMAT = 2


@dataclass
class Checkpoint:
    """A loaded checkpoint: the snapshot and the journal records written after it, in order."""

    snapshot: dict[str, Any]
    records: list[dict[str, Any]]


class CheckpointStore:
    """Reads and writes one session's checkpoint; not safe for two tasks at once (the engine serializes)."""

    def __init__(
        self,
        storage: Storage,
        workflow: str,
        session_id: str,
        *,
        ring: int = 64,
        fence: Lease | None = None,
        key: bytes | None = None,
        snapshot_bytes: int | None = None,
    ) -> None:
        if ring < 2:
            raise CheckpointError(f"the checkpoint ring needs at least 2 slots, got {ring}")
        self.storage = storage
        self.session_id = session_id
        self.ring = ring
        self.fence = fence
        self._sealer = Sealer(key)
        self._prefix = f"gecko/workflow/{workflow}/{session_id}/"
        self._snapshot_version: int | None = None
        self._slot_versions: dict[int, int] = {}
        self._slot_keys: dict[int, str] = {}
        # The run id last journaled, with its JSON text.
        self._run = ("", '""')
        self._entry = 0
        self.entries_since_snapshot = 0
        # Journal bytes since the snapshot (those `load` found included); past `snapshot_bytes` a snapshot is
        # due, and a snapshot deletes the slots once they hold more than that (sizes as loaded or written).
        self.snapshot_bytes = snapshot_bytes
        self.bytes_since_snapshot = 0
        self._slot_bytes: dict[int, int] = {}

    def _describe(self) -> str:
        return f"session {self.session_id!r} ({self._prefix}*)"

    async def load(self) -> Checkpoint | None:
        """Read the checkpoint and remember the versions this writer continues from.

        Every record is validated against its stored format and its seal (`gecko.compose._stored`).

        Raises:
            CorruptCheckpointError: the stored data is not a checkpoint this version can resume.
        """
        try:
            found = await self.storage.get_versioned(self._prefix + "snapshot")
            keys = await self.storage.list_keys(self._prefix + "journal/")
            slots = [(key, await self.storage.get_versioned(key)) for key in keys]
        except StorageError as exc:
            # A plain StorageError on read is the contract's "stored value is not valid JSON".
            if type(exc) is StorageError:
                raise CorruptCheckpointError(f"the checkpoint of {self._describe()} is unreadable: {exc}") from exc
            raise CheckpointError(f"could not read the checkpoint of {self._describe()}: {exc}") from exc
        entries: list[tuple[dict[str, Any], int]] = []
        # Entries sit in slot `e % ring` of the ring they were written with; another ring size
        # (snapshot_every changed) puts them elsewhere, so versions are kept by the slot read.
        resized = False
        for key, slot in slots:
            if slot is None:
                continue
            what = f"journal entry {key!r} of {self._describe()}"
            number = key.removeprefix(self._prefix + "journal/")
            if not (number.isascii() and number.isdigit()):
                raise CorruptCheckpointError(f"{what} is not a journal slot")
            entry = self._open(StoredEntry, slot, key, what)
            self._slot_versions[int(number)] = slot.version
            self._slot_bytes[int(number)] = self._sealer.sealed_bytes
            resized = resized or int(number) != entry["e"] % self.ring
            self._entry = max(self._entry, entry["e"])
            entries.append((entry, self._sealer.sealed_bytes))
        if found is None:
            return None
        self._snapshot_version = found.version
        stored_format = found.value.get("format", FORMAT) if isinstance(found.value, dict) else FORMAT
        if stored_format != FORMAT:
            raise CorruptCheckpointError(
                f"the snapshot of {self._describe()} has format {stored_format!r}; this Gecko reads {FORMAT}. "
                "Delete the session's keys to start over"
            )
        snapshot = self._open(StoredSnapshot, found, self._prefix + "snapshot", f"the snapshot of {self._describe()}")
        base = snapshot["rec"]
        records: dict[int, dict[str, Any]] = {}
        uncovered = uncovered_bytes = 0
        for entry, size in entries:
            if entry["run"] != snapshot["run"] or all(number <= base for number, _ in entry["recs"]):
                continue
            uncovered += 1
            uncovered_bytes += size
            for number, record in entry["recs"]:
                if number > base:
                    if number in records and records[number] != record:
                        raise CorruptCheckpointError(
                            f"the journal of {self._describe()} holds two different records numbered {number}"
                        )
                    records[number] = record
        ordered = sorted(records)
        if ordered != list(range(base + 1, base + 1 + len(ordered))):
            raise CorruptCheckpointError(
                f"the journal of {self._describe()} has a gap after record {base}; it cannot be resumed safely"
            )
        # The entries the snapshot does not cover count towards the next one (in number and bytes),
        # so the ring never wraps onto them and `snapshot_bytes` holds across a resume; after a
        # resize any slot may hold one, so a snapshot comes first.
        self.entries_since_snapshot = self.ring - 1 if resized else uncovered
        self.bytes_since_snapshot = uncovered_bytes
        what = f"the checkpoint of {self._describe()}"
        return Checkpoint(
            _restore_snapshot(snapshot, what), [_restore_record(records[number], what) for number in ordered]
        )

    def _open(self, model: type[StoredModel], found: Versioned, key: str, what: str) -> dict[str, Any]:
        return open_stored(self._sealer, model, found.value, where=key, version=found.version, what=what)

    async def write_entry(self, run: str, records: list[list[Any]]) -> None:
        """Append one journal entry holding `records` (`[record number, record]` pairs)."""
        entry = self._entry + 1
        slot = entry % self.ring
        key = self._slot_keys.get(slot) or self._slot_key(slot)
        if self._run[0] != run:
            self._run = (run, self._encoded(run))
        # Exactly `encode_value({"e": entry, "run": run, "recs": records})`, the run's text encoded once.
        text = f'{{"e":{entry},"run":{self._run[1]},"recs":{self._encoded(records)}}}'
        version = await self._put(key, text, self._slot_versions.get(slot))
        self._slot_versions[slot] = version
        self._entry = entry
        self.entries_since_snapshot += 1
        self.bytes_since_snapshot += self._sealer.sealed_bytes
        self._slot_bytes[slot] = self._sealer.sealed_bytes

    @property
    def snapshot_due(self) -> bool:
        """Whether the next entry would overwrite one the current snapshot does not cover, or the
        entries since the snapshot hold `snapshot_bytes` or more."""
        return self.entries_since_snapshot >= self.ring - 1 or (
            self.snapshot_bytes is not None and self.bytes_since_snapshot >= self.snapshot_bytes
        )

    async def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Replace the snapshot; journal entries up to its record number become obsolete."""
        self._snapshot_version = await self._put(
            self._prefix + "snapshot", self._encoded(snapshot), self._snapshot_version
        )
        self.entries_since_snapshot = 0
        self.bytes_since_snapshot = 0
        if self.snapshot_bytes is not None and sum(self._slot_bytes.values()) > self.snapshot_bytes:
            # The snapshot covers every entry: big obsolete ones go now rather than when the ring wraps.
            for slot in sorted(self._slot_bytes):
                await self.storage.delete(self._slot_key(slot), fence=self.fence)
                self._slot_versions.pop(slot, None)
            self._slot_bytes.clear()

    def _slot_key(self, slot: int) -> str:
        key = self._slot_keys[slot] = f"{self._prefix}journal/{slot:04d}"
        return key

    def _encoded(self, value: Any) -> str:
        """`encode_value(value)`, or the `CheckpointError` of a record that is not JSON data."""
        try:
            return encode_value(value)
        except InvalidValueError as exc:
            raise self._not_json(exc) from exc

    def _not_json(self, exc: InvalidValueError) -> CheckpointError:
        return CheckpointError(
            f"could not checkpoint {self._describe()}: node outputs and state must be JSON data ({exc})"
        )

    async def _put(self, key: str, text: str, expected: int | None) -> int:
        # `text` is a record's `encode_value` text. Versions grow by one per write, so the version
        # this write creates is known and bound.
        try:
            sealed = self._sealer.seal_encoded(text, where=key, version=(expected or 0) + 1)
            return await self.storage.compare_and_set(key, sealed, expected_version=expected, fence=self.fence)
        except VersionConflictError as exc:
            raise CheckpointError(
                f"{self._describe()} was written by another worker; only one process may run a session at a time"
            ) from exc
        except InvalidValueError as exc:
            raise self._not_json(exc) from exc


def _restore_snapshot(snapshot: dict[str, Any], what: str) -> dict[str, Any]:
    """`snapshot` with Gecko's own types rebuilt in every place that holds a user value."""

    def each(values: dict[str, Any]) -> dict[str, Any]:
        return {name: restored(value, what) for name, value in values.items()}

    history = snapshot["history"]
    interrupt = snapshot["interrupt"]
    return {
        **snapshot,
        "input": restored(snapshot["input"], what),
        "state": each(snapshot["state"]),
        "history": {
            "entries": [[node, restored(output, what)] for node, output in history["entries"]],
            "latest": each(history["latest"]),
            "last": restored(history["last"], what),
        },
        "pending": each(snapshot["pending"]),
        "inbox": each(snapshot["inbox"]),
        "merges": {
            key: {
                "base": [restored(base, what) for base in merges["base"]],
                "log": [[rank, rec, restored(value, what)] for rank, rec, value in merges["log"]],
            }
            for key, merges in snapshot["merges"].items()
        },
        "interrupt": None if interrupt is None else {**interrupt, "payload": restored(interrupt["payload"], what)},
    }


def _restore_record(record: dict[str, Any], what: str) -> dict[str, Any]:
    """A journal record with Gecko's own types rebuilt in its output, writes and jump input."""
    restored_record = {**record, "o": restored(record["o"], what)}
    if record.get("d") is not None:
        restored_record["d"] = {key: restored(value, what) for key, value in record["d"].items()}
    if record.get("j") is not None:
        restored_record["j"] = [record["j"][0], restored(record["j"][1], what)]
    return restored_record
