"""SummaryTokenMemory: old turns folded into one summary, produced once for any number of callers."""

from __future__ import annotations

import anyio
import pytest

from gecko.core.memory import SummaryTokenMemory
from gecko.errors import SummarizationError
from gecko.plugins.models import ModelRequest
from gecko.plugins.storage import Lease
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import FunctionModel, Reply, ScriptedModel
from gecko.types import JSONValue, Message, Role


def _history(turns: int) -> list[Message]:
    messages = [Message.system("You are a helpful assistant.")]
    for turn in range(turns):
        messages += [Message.user(f"question {turn} " + "word " * 20), Message.assistant(f"answer {turn} " + "x " * 20)]
    return messages


def _summary_of(window: list[Message]) -> str:
    return window[1].text


async def test_a_history_within_budget_is_not_summarized() -> None:
    model = ScriptedModel([])
    messages = _history(3)

    window = await SummaryTokenMemory(model, max_tokens=10_000).prepare(messages)

    assert window == messages
    assert model.requests == []


async def test_old_turns_are_replaced_by_one_summary_within_budget() -> None:
    model = ScriptedModel(["the user asked 30 questions"])
    memory = SummaryTokenMemory(model, max_tokens=400)
    messages = _history(30)

    window = await memory.prepare(messages)

    assert window[0] == messages[0]
    assert window[1].role is Role.SYSTEM
    assert "the user asked 30 questions" in _summary_of(window)
    assert window[-1] == messages[-1]
    assert memory.count_messages(window) <= 400
    assert "question 0" in model.requests[0].messages[-1].text


async def test_one_hundred_concurrent_callers_cause_exactly_one_summarization() -> None:
    model = ScriptedModel(["shared summary"], delay=0.01)
    memory = SummaryTokenMemory(model, max_tokens=400)
    messages = _history(30)
    windows: list[list[Message]] = []

    async def call() -> None:
        windows.append(await memory.prepare(messages))

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(call)

    assert len(model.requests) == 1
    assert memory.summarizations == 1
    assert len(windows) == 100
    assert all(window == windows[0] for window in windows)


async def test_callers_in_two_processes_sharing_storage_cause_one_summarization() -> None:
    storage = MemoryStorage()
    first_model = ScriptedModel(["shared summary"], delay=0.01)
    second_model = ScriptedModel(["shared summary"], delay=0.01)
    first = SummaryTokenMemory(first_model, max_tokens=400, storage=storage, poll_interval=0.002)
    second = SummaryTokenMemory(second_model, max_tokens=400, storage=storage, poll_interval=0.002)
    messages = _history(30)
    summaries: set[str] = set()

    async def call(memory: SummaryTokenMemory) -> None:
        summaries.add(_summary_of(await memory.prepare(messages)))

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(call, first)
            group.start_soon(call, second)

    assert len(first_model.requests) + len(second_model.requests) == 1
    assert len(summaries) == 1


async def test_a_failing_summarizer_fails_every_waiting_caller_and_leaves_memory_unchanged() -> None:
    attempts = 0

    async def summarize(request: ModelRequest) -> Reply:
        nonlocal attempts
        attempts += 1
        await anyio.sleep(0.01)
        if attempts == 1:
            raise ConnectionError("provider down")
        return "recovered summary"

    memory = SummaryTokenMemory(FunctionModel(summarize), max_tokens=400)
    messages = _history(30)
    failures: list[BaseException] = []

    async def call() -> None:
        try:
            await memory.prepare(messages)
        except SummarizationError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(call)

    assert len(failures) == 10
    assert attempts == 1
    assert "recovered summary" in _summary_of(await memory.prepare(messages))
    assert attempts == 2


async def test_a_cancelled_summarizing_caller_hands_the_summary_over_to_a_waiting_one() -> None:
    started = anyio.Event()

    async def summarize(request: ModelRequest) -> Reply:
        if not started.is_set():
            started.set()
            await anyio.sleep_forever()
        return "second attempt"

    model = FunctionModel(summarize)
    memory = SummaryTokenMemory(model, max_tokens=400)
    messages = _history(30)
    windows: list[list[Message]] = []
    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await memory.prepare(messages)

    async def waiter() -> None:
        windows.append(await memory.prepare(messages))

    async with anyio.create_task_group() as group:
        group.start_soon(leader)
        await started.wait()
        group.start_soon(waiter)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        leader_scope.cancel()

    assert len(model.requests) == 2
    assert "second attempt" in _summary_of(windows[0])


async def test_a_growing_history_reuses_its_summary_until_it_overflows_again() -> None:
    model = ScriptedModel(["first summary", "second summary"])
    memory = SummaryTokenMemory(model, max_tokens=400)
    messages = _history(30)
    await memory.prepare(messages)

    grown = [*messages, Message.user("one more question")]
    window = await memory.prepare(grown)

    assert "first summary" in _summary_of(window)
    assert len(model.requests) == 1
    much_longer = _history(60)
    assert "second summary" in _summary_of(await memory.prepare(much_longer))


async def test_an_empty_summary_is_a_summarization_error() -> None:
    memory = SummaryTokenMemory(ScriptedModel(["   "]), max_tokens=400)

    with pytest.raises(SummarizationError, match="empty summary"):
        await memory.prepare(_history(30))


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared storage"])
async def test_a_summary_longer_than_its_share_of_the_window_is_cut_to_fit(shared: bool) -> None:
    """A runaway summarizer once gave a window of 6 000 tokens for a budget of 400, cached for the conversation."""
    storage = MemoryStorage() if shared else None
    model = ScriptedModel(["the user asked " + "blah " * 5000])
    memory = SummaryTokenMemory(model, max_tokens=400, storage=storage)
    messages = _history(30)

    for _ in range(2):
        window = await memory.prepare(messages)
        assert memory.count_messages(window) <= 400
        assert window[-1] == messages[-1]
        summary = _summary_of(window)
        assert "the user asked blah blah" in summary
        assert summary.endswith(" [...]")
    assert memory.summarizations == 1
    if storage is not None:  # another process reads the model's summary from storage and cuts it alike
        other = SummaryTokenMemory(ScriptedModel([]), max_tokens=400, storage=storage)
        assert await other.prepare(messages) == window


async def test_a_blank_shared_summary_is_written_again_not_used() -> None:
    storage = MemoryStorage()
    messages = _history(30)
    await SummaryTokenMemory(ScriptedModel(["first"]), max_tokens=400, storage=storage).prepare(messages)
    (key,) = await storage.list_keys("gecko:memory:summary:")
    await storage.set(key, {"text": "  "})

    memory = SummaryTokenMemory(ScriptedModel(["fresh"]), max_tokens=400, storage=storage)
    assert _summary_of(await memory.prepare(messages)).endswith("\nfresh")
    assert await storage.get(key) == {"text": "fresh"}


async def test_a_system_prompt_that_leaves_no_room_for_a_summary_is_a_summarization_error() -> None:
    memory = SummaryTokenMemory(ScriptedModel(["short"]), max_tokens=400)
    messages = [Message.system("rules " * 390), *_history(30)[1:]]

    with pytest.raises(SummarizationError, match="no summary fits in 0 tokens, what the system messages leave of"):
        await memory.prepare(messages)


async def test_a_shared_summary_expires_after_the_storage_ttl() -> None:
    written: dict[str, float | None] = {}

    class Recording(MemoryStorage):
        async def set(self, key: str, value: JSONValue, *, ttl: float | None = None, fence: Lease | None = None) -> int:
            written[key] = ttl
            return await super().set(key, value, ttl=ttl, fence=fence)

    memory = SummaryTokenMemory(ScriptedModel(["short summary"]), max_tokens=400, storage=Recording(), storage_ttl=90)

    await memory.prepare(_history(30))

    [key] = [key for key in written if key.startswith("gecko:memory:summary:")]
    assert written[key] == 90
