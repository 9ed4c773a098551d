"""LongTermMemory: old turns archived to a vector store and recalled into the window when relevant."""

from __future__ import annotations

import pytest

from gecko import AgentBuilder, SummaryTokenMemory, TokenMemory
from gecko.errors import ConfigurationError
from gecko.plugins.knowledge import LongTermMemory
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.embedders import HashingEmbedder
from gecko.testing.models import FunctionModel, reply
from gecko.types import Message

TOPICS = (
    "weather in Paris", "python decorators", "baking sourdough bread", "the history of Rome", "jazz music",
    "marathon training", "tax forms", "gardening tomatoes", "chess openings", "sailing knots",
)  # fmt: skip


def conversation(turns: int) -> list[Message]:
    messages = [
        Message.system("You are a helpful assistant."),
        Message.user("Please remember this: my locker code is 4417."),
        Message.assistant("Noted, I will remember your locker code."),
    ]
    for i in range(turns):
        topic = TOPICS[i % len(TOPICS)]
        messages.append(Message.user(f"Question {i}: tell me something about {topic}."))
        messages.append(Message.assistant(f"Answer {i}: here is a short fact about {topic}, number {i}."))
    return messages


async def test_a_fact_from_200_turns_ago_is_recalled_into_a_2000_token_window() -> None:
    window = TokenMemory(1600)
    memory = LongTermMemory(window, MemoryStorage(), HashingEmbedder(), recall_tokens=400)
    messages = [*conversation(200), Message.user("What is my locker code?")]
    prepared = await memory.prepare(messages)
    assert memory.max_tokens == 2000
    assert window.count_messages(prepared) <= 2000
    assert not any("4417" in m.text for m in await window.prepare(messages))  # out of the window itself
    recalled = [m for m in prepared if "4417" in m.text]
    assert len(recalled) == 1
    assert recalled[0].role.value == "system"
    assert prepared[0].text == "You are a helpful assistant."
    assert prepared[1] is recalled[0]
    assert prepared[-1].text == "What is my locker code?"


async def test_an_unrelated_question_recalls_nothing() -> None:
    memory = LongTermMemory(TokenMemory(600), MemoryStorage(), HashingEmbedder(), recall_tokens=300)
    prepared = await memory.prepare([*conversation(60), Message.user("Zzyzx qwv?")])
    assert not any("Recalled from long-term memory" in m.text for m in prepared)


async def test_turns_are_embedded_once_however_often_the_window_is_prepared() -> None:
    embedder = HashingEmbedder()
    memory = LongTermMemory(TokenMemory(400), MemoryStorage(), embedder)
    messages = [*conversation(30), Message.user("What is my locker code?")]
    await memory.prepare(messages)
    archived = embedder.texts
    await memory.prepare(messages)
    assert embedder.texts == archived + 1  # only the query again
    fresh = LongTermMemory(TokenMemory(400), memory.records.store, embedder)
    await fresh.prepare(messages)  # another process: finds the stored turns, embeds none of them again
    assert embedder.texts == archived + 2


async def test_namespaces_keep_sessions_apart() -> None:
    store, embedder = MemoryStorage(), HashingEmbedder()
    alice = LongTermMemory(TokenMemory(500), store, embedder, namespace="alice")
    bob = LongTermMemory(TokenMemory(500), store, embedder, namespace="bob")
    await alice.prepare([*conversation(40), Message.user("What is my locker code?")])
    bob_window = await bob.prepare([Message.user("What is my locker code?")])
    assert not any("4417" in m.text for m in bob_window)
    await bob.remember("Bob's locker code is 9921.")
    bob_window = await bob.prepare([Message.user("What is my locker code?")])
    assert any("9921" in m.text for m in bob_window)
    assert not any("4417" in m.text for m in bob_window)


async def test_it_works_over_a_summary_memory() -> None:
    summaries: list[str] = []

    def summarizer(request: ModelRequest) -> ModelResponse:
        summaries.append(request.messages[-1].text)
        return reply("The user asked about many topics.")

    window = SummaryTokenMemory(FunctionModel(summarizer), 800)
    memory = LongTermMemory(window, MemoryStorage(), HashingEmbedder(), recall_tokens=300)
    prepared = await memory.prepare([*conversation(80), Message.user("What is my locker code?")])
    assert summaries
    assert any(m.text.startswith("Summary of the earlier conversation") for m in prepared)
    assert any("4417" in m.text for m in prepared)
    assert window.count_messages(prepared) <= memory.max_tokens


async def test_an_agent_uses_it_as_its_memory() -> None:
    requests: list[ModelRequest] = []

    def model(request: ModelRequest) -> ModelResponse:
        requests.append(request)
        return reply("ok")

    memory = LongTermMemory(TokenMemory(300), MemoryStorage(), HashingEmbedder(), recall_tokens=200)
    agent = AgentBuilder().with_model(FunctionModel(model)).with_memory(memory).with_session_id("s1").build()
    await agent.run("Please remember this: my locker code is 4417.")
    for i in range(40):
        await agent.run(f"Question {i}: tell me something about {TOPICS[i % len(TOPICS)]}.")
    await agent.run("What is my locker code?")
    assert any("4417" in m.text for m in requests[-1].messages)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        LongTermMemory(TokenMemory(100), MemoryStorage(), HashingEmbedder(), namespace="")
    with pytest.raises(ConfigurationError):
        LongTermMemory(TokenMemory(100), MemoryStorage(), HashingEmbedder(), recall_tokens=0)
