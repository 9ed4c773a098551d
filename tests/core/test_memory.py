"""TokenMemory: a token window that keeps the system message and tool-call/result pairs together."""

from __future__ import annotations

import sys
import types

import pytest

from gecko.core._tokens import estimate_tokens, resolve_counter
from gecko.core.memory import TokenMemory
from gecko.errors import ConfigurationError
from gecko.plugins.storage import Lease, StorageCapabilities
from gecko.plugins.storage.memory import MemoryStorage
from gecko.types import JSONValue, Message, Role, ToolCall


def _conversation(turns: int) -> list[Message]:
    messages = [Message.system("You are terse.")]
    for turn in range(turns):
        call = ToolCall(id=f"call_{turn}", name="lookup", arguments=f'{{"turn": {turn}}}')
        messages += [
            Message.user(f"question {turn} " + "word " * 10),
            Message.assistant(None, [call]),
            Message.tool(f"call_{turn}", f"result {turn} " + "data " * 10),
            Message.assistant(f"answer {turn} " + "text " * 10),
        ]
    return messages


async def test_a_history_within_budget_is_sent_whole() -> None:
    messages = _conversation(3)

    window = await TokenMemory(max_tokens=10_000).prepare(messages)

    assert window == messages


async def test_trimming_drops_the_oldest_turns_and_keeps_the_system_message() -> None:
    memory = TokenMemory(max_tokens=200)
    messages = _conversation(20)

    window = await memory.prepare(messages)

    assert window[0] == messages[0]
    assert window[-1] == messages[-1]
    assert memory.count_messages(window) <= 200
    assert window[1:] == messages[len(messages) - len(window) + 1 :]


async def test_trimming_never_separates_a_tool_call_from_its_result() -> None:
    messages = _conversation(10)
    for budget in range(40, 400, 3):
        window = await TokenMemory(max_tokens=budget).prepare(messages)

        call_ids = {call.id for message in window for call in message.tool_calls}
        result_ids = {message.tool_call_id for message in window if message.role is Role.TOOL}
        assert call_ids == result_ids, f"budget {budget}"


async def test_the_newest_message_is_kept_even_when_it_alone_exceeds_the_budget() -> None:
    messages = [Message.system("sys"), Message.user("old"), Message.user("huge " * 400)]

    window = await TokenMemory(max_tokens=50).prepare(messages)

    assert window == [messages[0], messages[2]]


async def test_a_large_tool_result_is_truncated_to_its_budget() -> None:
    memory = TokenMemory(max_tokens=1000, max_tool_result_tokens=50)
    call = ToolCall(id="c1", name="fetch")
    messages = [Message.user("fetch"), Message.assistant(None, [call]), Message.tool("c1", "line\n" * 2000)]

    window = await memory.prepare(messages)

    assert memory.count(window[-1]) <= 50
    assert window[-1].tool_call_id == "c1"
    assert "tool result truncated" in window[-1].text


async def test_a_truncated_tool_result_is_offloaded_to_storage_with_a_reference() -> None:
    storage = MemoryStorage()
    memory = TokenMemory(max_tokens=1000, max_tool_result_tokens=60, storage=storage)
    full = "row,value\n" * 1000
    messages = [Message.user("q"), Message.assistant(None, [ToolCall(id="c1", name="db")]), Message.tool("c1", full)]

    window = await memory.prepare(messages)

    [key] = await storage.list_keys("gecko:memory:tool-result:")
    assert key in window[-1].text
    assert await storage.get(key) == full


async def test_message_token_counts_are_cached() -> None:
    counted: list[str] = []

    def counter(text: str) -> int:
        counted.append(text)
        return len(text.split())

    memory = TokenMemory(max_tokens=10_000, counter=counter)
    messages = [Message.system("be brief"), Message.user("hello there"), Message.assistant("hi")]

    await memory.prepare(messages)
    first = len(counted)
    await memory.prepare([*messages, Message.user("again")])

    assert counted[first:] == ["again"]


async def test_a_custom_counter_decides_the_window() -> None:
    memory = TokenMemory(max_tokens=4 + 3 + 4 + 3, counter=lambda text: 3)
    messages = [Message.user("a"), Message.user("b"), Message.user("c")]

    window = await memory.prepare(messages)

    assert window == messages[1:]


class _TTLRecordingStorage(MemoryStorage):
    """A memory:// store that records the TTL of every write."""

    def __init__(self) -> None:
        super().__init__()
        self.ttls: dict[str, float | None] = {}

    async def set(self, key: str, value: JSONValue, *, ttl: float | None = None, fence: Lease | None = None) -> int:
        self.ttls[key] = ttl
        return await super().set(key, value, ttl=ttl, fence=fence)


class _NoTTLStorage(MemoryStorage):
    capabilities = StorageCapabilities(ttl=False)


async def test_an_offloaded_tool_result_expires_after_the_storage_ttl() -> None:
    storage = _TTLRecordingStorage()
    memory = TokenMemory(max_tokens=1000, max_tool_result_tokens=60, storage=storage, storage_ttl=3600)
    messages = [
        Message.user("q"),
        Message.assistant(None, [ToolCall(id="c1", name="db")]),
        Message.tool("c1", "row\n" * 2000),
    ]

    await memory.prepare(messages)

    [key] = await storage.list_keys("gecko:memory:tool-result:")
    assert storage.ttls == {key: 3600}


def test_a_storage_without_ttl_is_refused_so_nothing_written_is_kept_forever() -> None:
    with pytest.raises(ConfigurationError, match="TTL"):
        TokenMemory(storage=_NoTTLStorage())


def test_the_estimate_counts_about_four_ascii_characters_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd" * 25) == 25


def test_the_estimate_counts_about_one_token_per_cjk_character() -> None:
    assert estimate_tokens("你好世界") == 4


def test_tiktoken_counter_without_tiktoken_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)

    with pytest.raises(ConfigurationError, match="pip install tiktoken"):
        TokenMemory(counter="tiktoken")


def test_tiktoken_counter_falls_back_to_o200k_for_unknown_models(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    class Encoding:
        def encode(self, text: str, disallowed_special: tuple[str, ...] = ()) -> list[int]:
            return [0] * len(text)

    def encoding_for_model(model: str) -> Encoding:
        raise KeyError(model)

    def get_encoding(name: str) -> Encoding:
        asked.append(name)
        return Encoding()

    fake = types.ModuleType("tiktoken")
    fake.encoding_for_model = encoding_for_model  # type: ignore[attr-defined]
    fake.get_encoding = get_encoding  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)

    count = resolve_counter("tiktoken", "glm-4-flash")

    assert count("abc") == 3
    assert asked == ["o200k_base"]


def test_a_non_positive_budget_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="max_tokens"):
        TokenMemory(max_tokens=0)
