"""Checkpoints tampered with in Redis itself, below the storage API: resume refuses them typed, or resumes right."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis

from gecko.errors import CheckpointError, CorruptCheckpointError, StorageError
from gecko.plugins.storage import StorageURL
from gecko.plugins.storage.factory import create_storage
from gecko.testing.conformance import CheckpointIntegrityConformance

SESSION = "raw"
PREFIX = f"gecko/workflow/ledger/{SESSION}/"
Tamper = Callable[[redis.Redis, str], object]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    parsed = StorageURL.parse(redis_url)
    client = redis.Redis.from_url(f"{parsed.scheme}://{parsed.netloc}{parsed.path}")
    yield client
    client.close()


def _hash(namespace: str, name: str) -> str:
    return f"{namespace}:kv:{PREFIX}{name}"


def _journal(client: redis.Redis, namespace: str) -> list[bytes]:
    return sorted(client.scan_iter(match=_hash(namespace, "journal/*")))


def _swap_snapshot_and_journal(client: redis.Redis, namespace: str) -> None:
    snapshot, entry = _hash(namespace, "snapshot"), _journal(client, namespace)[0]
    first, second = client.hget(snapshot, "v"), client.hget(entry, "v")
    client.hset(snapshot, "v", second)  # type: ignore[arg-type]
    client.hset(entry, "v", first)  # type: ignore[arg-type]


REFUSED: dict[str, tuple[Tamper, str]] = {
    "value not UTF-8": (lambda c, ns: c.hset(_hash(ns, "snapshot"), "v", b"\xff\xfe{}"), "not UTF-8"),
    "version not a number": (lambda c, ns: c.hset(_hash(ns, "snapshot"), "n", b"abc"), "not a whole number"),
    "version a fraction": (lambda c, ns: c.hset(_hash(ns, "snapshot"), "n", b"1.5"), "not a whole number"),
    "version zero": (lambda c, ns: c.hset(_hash(ns, "snapshot"), "n", b"0"), "is 0, not a version this store writes"),
    "version at the counter's limit": (
        lambda c, ns: c.hset(_hash(ns, "snapshot"), "n", b"9223372036854775807"),
        "not a version this store writes",
    ),
    "value NaN": (lambda c, ns: c.hset(_hash(ns, "snapshot"), "v", b"NaN"), "NaN is not a JSON number"),
    "value beyond float64": (lambda c, ns: c.hset(_hash(ns, "snapshot"), "v", b"[1e999]"), "beyond the range"),
    "value with a lone surrogate escape": (
        lambda c, ns: c.hset(_hash(ns, "snapshot"), "v", b'["\\udfff"]'),
        "holds a lone surrogate",
    ),
    "value truncated": (
        lambda c, ns: c.hset(_hash(ns, "snapshot"), "v", c.hget(_hash(ns, "snapshot"), "v")[:40]),  # type: ignore[index]
        "not valid JSON",
    ),
    "a string where a hash belongs": (
        lambda c, ns: (c.delete(_hash(ns, "snapshot")), c.set(_hash(ns, "snapshot"), "{}")),
        "WRONGTYPE",
    ),
    "snapshot and journal entry swapped": (_swap_snapshot_and_journal, "is malformed|integrity check"),
    "journal entry not UTF-8": (lambda c, ns: c.hset(_journal(c, ns)[0], "v", b"\x80"), "not UTF-8"),
    "value repeats a key": (
        lambda c, ns: c.hset(_hash(ns, "snapshot"), "v", b'{"state":{},' + c.hget(_hash(ns, "snapshot"), "v")[1:]),  # type: ignore[index]
        "an object repeats the key 'state'",
    ),
}


def _contents(client: redis.Redis, namespace: str) -> dict[bytes, tuple[bytes | None, int]]:
    """Every stored key of `namespace` with its serialized value and time to live (not the lease counter, which
    every grant moves on)."""
    keys = client.scan_iter(match=f"{namespace}:kv:*")
    return {key: (client.dump(key), client.pttl(key)) for key in keys}  # type: ignore[misc]


@pytest.mark.parametrize(("tamper", "match"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_checkpoint_tampered_in_redis_is_refused_typed(
    redis_url: str, client: redis.Redis, tamper: Tamper, match: str
) -> None:
    async with await create_storage(redis_url) as storage:
        ledger = await CheckpointIntegrityConformance()._crashed(storage, SESSION)
    namespace = StorageURL.parse(redis_url).query["namespace"]
    tamper(client, namespace)
    runs, contents = Counter(ledger.runs), _contents(client, namespace)
    async with await create_storage(redis_url) as storage:
        with pytest.raises(CorruptCheckpointError, match=match):
            await ledger.workflow(storage).resume(SESSION)
    assert ledger.runs == runs, "a node ran from a tampered checkpoint"
    assert _contents(client, namespace) == contents, "a refused resume changed what Redis holds"


async def test_a_deleted_journal_entry_re_runs_its_nodes_and_a_deleted_version_is_no_checkpoint(
    redis_url: str, client: redis.Redis
) -> None:
    namespace = StorageURL.parse(redis_url).query["namespace"]
    async with await create_storage(redis_url) as storage:
        ledger = await CheckpointIntegrityConformance()._crashed(storage, SESSION)
        client.delete(*_journal(client, namespace))
        result = await ledger.workflow(storage).resume(SESSION)
        assert (result.state["total"], ledger.runs) == (5, Counter(a=1, b=2, c=2, d=2, e=1))
        client.hdel(_hash(namespace, "snapshot"), "n")
        with pytest.raises(CheckpointError, match="no checkpoint for session"):
            await ledger.workflow(storage).resume(SESSION)


async def test_keys_and_lease_owners_that_are_not_utf8_are_typed_errors(redis_url: str, client: redis.Redis) -> None:
    namespace = StorageURL.parse(redis_url).query["namespace"]
    async with await create_storage(redis_url) as storage:
        await storage.set("listed/ok", 1)
        client.hset(f"{namespace}:kv:listed/".encode() + b"\xff", mapping={"v": b"1", "n": b"1"})
        with pytest.raises(StorageError, match="not UTF-8 for a key"):
            await storage.list_keys("listed/")
        assert await storage.acquire_lease("job", owner="me", ttl=60) is not None
        client.hset(f"{namespace}:lease:job", "owner", b"\xc3")
        with pytest.raises(StorageError, match="not UTF-8 for the owner of lease 'job'"):
            await storage.lease_owner("job")
