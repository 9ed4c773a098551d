"""`StorageConformance`: the storage contract as a pytest class every backend subclasses.

Subclass it in a test module and provide the fixture `storage_url`; pytest then checks the whole
contract against your backend::

    import pytest
    from gecko.testing.conformance import StorageConformance

    class TestMyStore(StorageConformance):
        @pytest.fixture
        def storage_url(self, tmp_path):
            return f"mystore:///{tmp_path}/data"

The suite opens stores with `create_storage(storage_url)`, so the backend must be installed
(its entry point registered). A backend that is not registered overrides `open_storage`
instead: a fixture returning an async function that opens a new handle on the same data.

Checks that depend on `StorageCapabilities` never skip: when a backend does not declare a
capability, the check asserts that the capability is really absent (e.g. `ttl=` raises
`StorageError`, a non-persistent store is empty after reopening).

The last checks keep an agent's sessions in the store: a discarded paused run (`Agent.discard`)
leaves nothing of its own behind, neither its messages nor the data plugins kept with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gecko.core.agent import Agent, PausedOutput, session_key
from gecko.core.state import current_run_usage
from gecko.core.toolbox import tool
from gecko.errors import (
    FencingError,
    InvalidKeyError,
    InvalidValueError,
    StorageClosedError,
    StorageError,
    VersionConflictError,
)
from gecko.plugins import hookimpl
from gecko.plugins.manager import plugin_manager
from gecko.plugins.models import ModelRequest
from gecko.plugins.storage import MAX_KEY_LENGTH, JSONText, Storage, Versioned, encode_value
from gecko.plugins.storage.factory import create_storage
from gecko.testing.models import ScriptedModel, tool_calls_reply

__all__ = ("StorageConformance", "JSON_SAMPLES", "INVALID_KEYS", "INVALID_VALUES")

Opener = Callable[[], Awaitable[Storage]]

JSON_SAMPLES: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "negative": -17,
    "big-int": 2**62,
    "float": 3.25,
    "negative-float": -0.5,
    "empty-string": "",
    "text": "plain text",
    "non-ascii": "héllo wörld — 你好 世界 🦎 ∑ \u00a0 \u200d",
    "escapes": 'quotes " and \\ backslash\nnewline\ttab',
    "empty-list": [],
    "list": [1, "two", 3.5, None, True, [False]],
    "empty-object": {},
    "object": {"a": 1, "b": [1, 2, {"c": None}], "ключ": "значение", "": "empty key"},
    "nested": {"level": [{"level": [{"level": [1, 2, 3]}]}]},
}

INVALID_KEYS: dict[str, Any] = {
    "empty": "",
    "too-long": "k" * (MAX_KEY_LENGTH + 1),
    "newline": "a\nb",
    "nul": "a\x00b",
    "delete-char": "a\x7fb",
    "lone-surrogate": "a\ud800b",
    "int": 7,
    "none": None,
    "bytes": b"key",
}

INVALID_VALUES: dict[str, Any] = {
    "nan": float("nan"),
    "infinity": float("inf"),
    "object": object(),
    "bytes": b"bytes",
    "set": {1, 2},
    "nested-object": {"ok": [1, object()]},
    "lone-surrogate": "a\udc00b",
}

TEN_MB = 10 * 1024 * 1024


class StorageConformance:
    """The storage contract; subclass it and provide `storage_url` (or override `open_storage`)."""

    pytestmark = pytest.mark.anyio

    concurrent_writers = 16
    """How many tasks race on one counter in the compare-and-set check."""

    @pytest.fixture
    def storage_url(self) -> str:
        """The URL of a fresh, empty store for one test. Subclasses override this fixture."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `storage_url` fixture (or override `open_storage`)"
        )

    @pytest.fixture
    def open_storage(self, storage_url: str) -> Opener:
        """An async function opening a new handle on the test's store; each call is a new handle."""

        async def open_() -> Storage:
            return await create_storage(storage_url, kind="kv")

        return open_

    @pytest.fixture
    async def storage(self, open_storage: Opener) -> AsyncIterator[Storage]:
        """An open store, closed after the test."""
        store = await open_storage()
        try:
            yield store
        finally:
            await store.close()

    # --- values --------------------------------------------------------------------

    @pytest.mark.parametrize("name", list(JSON_SAMPLES))
    async def test_every_json_type_round_trips(self, storage: Storage, name: str) -> None:
        value = JSON_SAMPLES[name]
        await storage.set(f"sample/{name}", value)
        loaded = await storage.get(f"sample/{name}", default="<missing>")
        assert loaded == value
        assert type(loaded) is type(value)

    async def test_non_ascii_keys_round_trip(self, storage: Storage) -> None:
        key = "用户/ключ/🦎"
        await storage.set(key, "value")
        assert await storage.get(key) == "value"
        assert await storage.list_keys("用户/") == [key]

    async def test_stored_null_differs_from_missing(self, storage: Storage) -> None:
        await storage.set("null", None)
        assert await storage.get("null", default="fallback") is None
        assert await storage.get_versioned("null") == Versioned(None, 1)
        assert await storage.get("absent", default="fallback") == "fallback"

    async def test_missing_key_reads_as_none(self, storage: Storage) -> None:
        assert await storage.get("absent") is None
        assert await storage.get_versioned("absent") is None

    async def test_value_of_ten_megabytes_round_trips(self, storage: Storage) -> None:
        value = {"blob": "x" * TEN_MB, "tail": "🦎"}
        await storage.set("big", value)
        assert await storage.get("big") == value

    async def test_stored_value_is_a_copy(self, storage: Storage) -> None:
        value: dict[str, Any] = {"items": [1]}
        await storage.set("copy", value)
        value["items"].append(2)
        loaded = await storage.get("copy")
        loaded["items"].append(3)
        assert await storage.get("copy") == {"items": [1]}

    async def test_encoded_json_text_is_stored_as_that_value(self, storage: Storage) -> None:
        value = {"b": [1, 2.5, None], "a": "🦎", "seal": "sha256:00"}
        assert await storage.set("text", JSONText(encode_value(value, sort_keys=True))) == 1
        assert await storage.compare_and_set("text", JSONText(encode_value([value])), expected_version=1) == 2
        with pytest.raises(VersionConflictError):
            await storage.compare_and_set("text", JSONText(encode_value("stale")), expected_version=1)
        assert await storage.get_versioned("text") == Versioned([value], 2)

    async def test_object_key_order_round_trips(self, storage: Storage) -> None:
        # Checkpoint seals cover the stored text in its own key order: a store that reorders keys
        # (a JSON column type that normalises objects) would make every checkpoint read as tampered.
        value = {"zeta": 1, "alpha": {"y": 2, "b": 3}, "mid": [{"k": 1, "a": 2}]}
        await storage.set("ordered", JSONText(encode_value(value)))
        await storage.set("ordered-data", value)
        for key in ("ordered", "ordered-data"):
            loaded = await storage.get(key)
            assert encode_value(loaded) == encode_value(value)

    # --- writes and versions --------------------------------------------------------

    async def test_overwrite_replaces_value_and_bumps_version(self, storage: Storage) -> None:
        assert await storage.set("key", "first") == 1
        assert await storage.set("key", {"second": True}) == 2
        assert await storage.get_versioned("key") == Versioned({"second": True}, 2)

    async def test_compare_and_set_creates_when_expected_absent(self, storage: Storage) -> None:
        assert await storage.compare_and_set("new", 1, expected_version=None) == 1
        assert await storage.get("new") == 1

    async def test_compare_and_set_rejects_create_over_existing_key(self, storage: Storage) -> None:
        await storage.set("key", "kept")
        with pytest.raises(VersionConflictError):
            await storage.compare_and_set("key", "lost", expected_version=None)
        assert await storage.get_versioned("key") == Versioned("kept", 1)

    async def test_compare_and_set_rejects_stale_version(self, storage: Storage) -> None:
        await storage.set("key", "one")
        await storage.set("key", "two")
        with pytest.raises(VersionConflictError):
            await storage.compare_and_set("key", "stale", expected_version=1)
        assert await storage.get_versioned("key") == Versioned("two", 2)

    async def test_compare_and_set_writes_at_current_version(self, storage: Storage) -> None:
        await storage.set("key", "one")
        assert await storage.compare_and_set("key", "two", expected_version=1) == 2
        assert await storage.get_versioned("key") == Versioned("two", 2)

    async def test_compare_and_set_under_concurrent_writers_loses_no_increment(self, storage: Storage) -> None:
        async def increment() -> None:
            while True:
                current = await storage.get_versioned("counter")
                await anyio.lowlevel.checkpoint()  # let the other writers read the same version
                try:
                    if current is None:
                        await storage.compare_and_set("counter", 1, expected_version=None)
                    else:
                        await storage.compare_and_set("counter", current.value + 1, expected_version=current.version)
                except VersionConflictError:
                    continue
                return

        async with anyio.create_task_group() as group:
            for _ in range(self.concurrent_writers):
                group.start_soon(increment)
        assert await storage.get_versioned("counter") == Versioned(self.concurrent_writers, self.concurrent_writers)

    async def test_delete_removes_key_and_reports_existence(self, storage: Storage) -> None:
        await storage.set("key", "value")
        assert await storage.delete("key") is True
        assert await storage.get("key") is None
        assert await storage.delete("key") is False
        assert await storage.list_keys() == []

    async def test_deleted_key_can_be_created_again(self, storage: Storage) -> None:
        await storage.set("key", "old")
        await storage.delete("key")
        await storage.compare_and_set("key", "new", expected_version=None)
        assert await storage.get("key") == "new"

    # --- listing -------------------------------------------------------------------

    async def test_list_keys_by_prefix_sorted(self, storage: Storage) -> None:
        for key in ("b/2", "a/2", "a/1", "a", "ab", "b/1"):
            await storage.set(key, key)
        assert await storage.list_keys("a/") == ["a/1", "a/2"]
        assert await storage.list_keys("a") == ["a", "a/1", "a/2", "ab"]
        assert await storage.list_keys() == ["a", "a/1", "a/2", "ab", "b/1", "b/2"]
        assert await storage.list_keys("zzz") == []

    async def test_list_keys_treats_wildcard_characters_literally(self, storage: Storage) -> None:
        for key in ("x_1", "xa1", "x%2", "x*3", "x?4", "x[5]", "x\\6"):
            await storage.set(key, 0)
        assert await storage.list_keys("x_") == ["x_1"]
        assert await storage.list_keys("x%") == ["x%2"]
        assert await storage.list_keys("x*") == ["x*3"]
        assert await storage.list_keys("x?") == ["x?4"]
        assert await storage.list_keys("x[") == ["x[5]"]
        assert await storage.list_keys("x\\") == ["x\\6"]

    async def test_list_keys_with_non_ascii_prefix(self, storage: Storage) -> None:
        for key in ("日本/1", "日本/2", "日曜", "日"):
            await storage.set(key, 0)
        assert await storage.list_keys("日本") == ["日本/1", "日本/2"]
        assert await storage.list_keys("日") == ["日", "日曜", "日本/1", "日本/2"]

    # --- TTL -----------------------------------------------------------------------

    async def test_ttl_expires_value_or_is_refused(self, storage: Storage) -> None:
        if not storage.capabilities.ttl:
            with pytest.raises(StorageError, match="TTL"):
                await storage.set("ephemeral", 1, ttl=1.0)
            assert await storage.get("ephemeral") is None
            return
        await storage.set("ephemeral", 1, ttl=0.05)
        await storage.set("lasting", 2, ttl=3600)
        await anyio.sleep(0.3)
        assert await storage.get("ephemeral") is None
        assert await storage.get_versioned("lasting") == Versioned(2, 1)
        assert await storage.list_keys() == ["lasting"]

    async def test_expired_key_counts_as_absent_for_compare_and_set(self, storage: Storage) -> None:
        if not storage.capabilities.ttl:
            with pytest.raises(StorageError, match="TTL"):
                await storage.compare_and_set("ephemeral", 1, expected_version=None, ttl=1.0)
            assert await storage.get("ephemeral") is None
            return
        await storage.set("ephemeral", "old", ttl=0.05)
        await anyio.sleep(0.3)
        assert await storage.compare_and_set("ephemeral", "new", expected_version=None) == 1
        assert await storage.get("ephemeral") == "new"

    @pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
    async def test_non_positive_ttl_is_rejected(self, storage: Storage, ttl: float) -> None:
        with pytest.raises(StorageError):
            await storage.set("key", 1, ttl=ttl)
        assert await storage.get("key") is None

    # --- leases and fencing ----------------------------------------------------------

    async def test_lease_is_exclusive_until_released(self, storage: Storage) -> None:
        if not storage.capabilities.leases:
            with pytest.raises(StorageError, match="leases"):
                await storage.acquire_lease("job", owner="a", ttl=60)
            return
        first = await storage.acquire_lease("job", owner="a", ttl=60)
        assert first is not None
        assert first.owner == "a"
        assert await storage.acquire_lease("job", owner="b", ttl=60) is None
        await storage.release_lease(first)
        second = await storage.acquire_lease("job", owner="b", ttl=60)
        assert second is not None
        assert second.token > first.token

    async def test_stale_fencing_token_write_is_rejected_and_changes_nothing(self, storage: Storage) -> None:
        if not storage.capabilities.leases:
            with pytest.raises(StorageError, match="leases"):
                await storage.acquire_lease("job", owner="a", ttl=60)
            return
        stale = await storage.acquire_lease("job", owner="a", ttl=0.05)
        assert stale is not None
        await storage.set("state", "written by a", fence=stale)
        await anyio.sleep(0.3)
        current = await storage.acquire_lease("job", owner="b", ttl=60)
        assert current is not None
        assert current.token > stale.token
        with pytest.raises(FencingError):
            await storage.set("state", "late write by a", fence=stale)
        with pytest.raises(FencingError):
            await storage.compare_and_set("state", "late cas by a", expected_version=1, fence=stale)
        with pytest.raises(FencingError):
            await storage.delete("state", fence=stale)
        assert await storage.get_versioned("state") == Versioned("written by a", 1)
        assert await storage.set("state", "written by b", fence=current) == 2

    async def test_lost_lease_cannot_be_renewed(self, storage: Storage) -> None:
        if not storage.capabilities.leases:
            with pytest.raises(StorageError, match="leases"):
                await storage.acquire_lease("job", owner="a", ttl=60)
            return
        lost = await storage.acquire_lease("job", owner="a", ttl=0.05)
        assert lost is not None
        await anyio.sleep(0.3)
        assert await storage.acquire_lease("job", owner="b", ttl=60) is not None
        with pytest.raises(FencingError):
            await storage.renew_lease(lost, ttl=60)

    async def test_held_lease_renews_with_same_token(self, storage: Storage) -> None:
        if not storage.capabilities.leases:
            with pytest.raises(StorageError, match="leases"):
                await storage.acquire_lease("job", owner="a", ttl=60)
            return
        lease = await storage.acquire_lease("job", owner="a", ttl=60)
        assert lease is not None
        renewed = await storage.renew_lease(lease, ttl=120)
        assert renewed.token == lease.token
        assert renewed.expires_at >= lease.expires_at
        await storage.set("state", 1, fence=renewed)
        assert await storage.get("state") == 1

    # --- persistence ---------------------------------------------------------------

    async def test_data_survives_close_and_reopen_or_is_declared_ephemeral(
        self, storage: Storage, open_storage: Opener
    ) -> None:
        await storage.set("kept", {"text": "héllo 🦎"})
        await storage.set("kept", {"text": "héllo 🦎", "n": 2})
        await storage.close()
        reopened = await open_storage()
        try:
            if storage.capabilities.persistent:
                assert await reopened.get_versioned("kept") == Versioned({"text": "héllo 🦎", "n": 2}, 2)
                assert await reopened.list_keys() == ["kept"]
            else:
                assert await reopened.get("kept") is None
        finally:
            await reopened.close()

    # --- invalid input -------------------------------------------------------------

    @pytest.mark.parametrize("name", list(INVALID_KEYS))
    async def test_invalid_key_is_rejected_by_every_operation(self, storage: Storage, name: str) -> None:
        key = INVALID_KEYS[name]
        with pytest.raises(InvalidKeyError):
            await storage.set(key, 1)
        with pytest.raises(InvalidKeyError):
            await storage.compare_and_set(key, 1, expected_version=None)
        with pytest.raises(InvalidKeyError):
            await storage.get(key)
        with pytest.raises(InvalidKeyError):
            await storage.delete(key)
        assert await storage.list_keys() == []

    async def test_longest_valid_key_is_accepted(self, storage: Storage) -> None:
        key = "k" * MAX_KEY_LENGTH
        await storage.set(key, 1)
        assert await storage.get(key) == 1

    @pytest.mark.parametrize("name", list(INVALID_VALUES))
    async def test_invalid_value_is_rejected_and_nothing_is_stored(self, storage: Storage, name: str) -> None:
        await storage.set("key", "before")
        with pytest.raises(InvalidValueError):
            await storage.set("key", INVALID_VALUES[name])
        assert await storage.get_versioned("key") == Versioned("before", 1)

    async def test_non_string_prefix_is_rejected(self, storage: Storage) -> None:
        with pytest.raises(InvalidKeyError):
            await storage.list_keys(b"a")  # type: ignore[arg-type]

    # --- lifecycle -----------------------------------------------------------------

    async def test_use_after_close_raises(self, storage: Storage) -> None:
        await storage.set("key", 1)
        await storage.close()
        assert storage.closed
        with pytest.raises(StorageClosedError):
            await storage.get("key")
        with pytest.raises(StorageClosedError):
            await storage.set("key", 2)
        with pytest.raises(StorageClosedError):
            await storage.compare_and_set("key", 2, expected_version=1)
        with pytest.raises(StorageClosedError):
            await storage.delete("key")
        with pytest.raises(StorageClosedError):
            await storage.list_keys()

    async def test_close_twice_is_harmless(self, storage: Storage) -> None:
        await storage.close()
        await storage.close()
        assert storage.closed

    async def test_async_with_closes_the_store(self, open_storage: Opener) -> None:
        async with await open_storage() as store:
            await store.set("key", 1)
        assert store.closed
        with pytest.raises(StorageClosedError):
            await store.get("key")

    # --- agent sessions --------------------------------------------------------------------

    async def test_a_discarded_run_leaves_neither_its_messages_nor_its_plugin_data(self, storage: Storage) -> None:
        with _counting() as counter:
            await _agent(storage, ["done"]).run("first", session_id="s")
            pausing = _agent(storage, [tool_calls_reply(("erase", '{"path": "x"}'))])
            assert isinstance(await pausing.run("erase x", session_id="s"), PausedOutput)

            await pausing.discard("s")

            saved = await storage.get(session_key("s"))
            assert isinstance(saved, dict)
            assert [message["content"] for message in saved["state"]["messages"]] == ["first", "done"]
            assert saved["state"]["plugins"] == {_NAMESPACE: {"requests": 1}}  # as the session was before the run
            await _agent(storage, ["done"]).run("again", session_id="s")
        assert counter.seen == [0, 1, 1]

    async def test_a_discarded_run_that_began_its_session_leaves_nothing(self, storage: Storage) -> None:
        with _counting() as counter:
            pausing = _agent(storage, [tool_calls_reply(("erase", '{"path": "x"}'))])
            assert isinstance(await pausing.run("erase x", session_id="t"), PausedOutput)

            await pausing.discard("t")

            assert await storage.get(session_key("t")) is None
            await _agent(storage, ["done"]).run("again", session_id="t")
        assert counter.seen == [0, 0]


_NAMESPACE = "storage-conformance"


class _Counter:
    """A hook plugin counting, in its namespace of the run's state (`plugin_state`), the requests a session made."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    @hookimpl
    def gecko_model_request(self, request: ModelRequest, source: str) -> None:
        run = current_run_usage()
        assert run is not None
        data = run.state.plugin_state(_NAMESPACE)
        count = data.get("requests", 0)
        assert isinstance(count, int)
        self.seen.append(count)
        data["requests"] = count + 1


@contextmanager
def _counting() -> Iterator[_Counter]:
    counter = _Counter()
    manager = plugin_manager()
    manager.register(counter, f"gecko-{_NAMESPACE}")
    try:
        yield counter
    finally:
        manager.unregister(counter)


@tool(name="erase", requires_approval=True)
async def _erase(path: str) -> str:
    """Erase a file."""
    return f"erased {path}"


def _agent(storage: Storage, replies: list[Any]) -> Agent:
    return Agent(ScriptedModel(replies), tools=[_erase], storage=storage)
