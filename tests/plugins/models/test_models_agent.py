"""The seed's agent example over real HTTP: ZhipuChat against the local OpenAI-protocol server."""

from __future__ import annotations

from gecko_models import ZhipuChat

from gecko.core.builder import AgentBuilder
from gecko.core.events import FinalOutput, TextDelta
from gecko.core.toolbox import tool
from gecko.testing.models import reply, tool_calls_reply
from gecko.testing.server import OpenAIServer
from gecko.types import TokenUsage


@tool
def lookup_policy(topic: str) -> str:
    """Look up a company policy."""
    return f"{topic}: receipts within 30 days"


SCRIPT = [
    tool_calls_reply(("lookup_policy", '{"topic": "expenses"}'), input_tokens=52, output_tokens=11),
    reply("Submit receipts within 30 days.", input_tokens=80, output_tokens=9),
]


def _agent(server: OpenAIServer):  # type: ignore[no-untyped-def]
    llm = ZhipuChat(api_key="zhipu-test-key", model="glm-4-flash", api_base=server.base_url)
    return (
        AgentBuilder()
        .with_model(llm)
        .with_tools([lookup_policy])
        .with_system_prompt("You are an assistant; check the knowledge base first.")
        .build()
    )


async def test_agent_returns_the_scripted_answer_over_http() -> None:
    async with OpenAIServer(SCRIPT) as server:
        output = await _agent(server).run("What is the expense policy?")
        second = server.chat_requests()[1]["messages"]
    assert output.content == "Submit receipts within 30 days."
    assert second[-1]["content"] == "expenses: receipts within 30 days"
    assert output.usage == TokenUsage(input_tokens=132, output_tokens=20, total_tokens=152, requests=2)


async def test_streamed_agent_returns_the_scripted_answer_over_http() -> None:
    async with OpenAIServer(SCRIPT) as server:
        events = [event async for event in _agent(server).stream("What is the expense policy?")]
    final = events[-1]
    assert isinstance(final, FinalOutput)
    assert final.output.content == "Submit receipts within 30 days."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Submit receipts within 30 days."
    assert final.output.usage == TokenUsage(input_tokens=132, output_tokens=20, total_tokens=152, requests=2)
