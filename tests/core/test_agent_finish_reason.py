"""An answer cut at the output token limit or withheld by the provider's filter says so on its output,
on every path (lean, observed, streamed); a structured answer given by the output tool ends "stop"."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.events import EventBus, FinalOutput
from gecko.core.state import PausedOutput
from gecko.core.toolbox import tool
from gecko.plugins.models import ModelResponse
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import AgentOutput, FinishReason, Message, TokenUsage, ToolCall

Path = Literal["lean", "observed", "streamed"]
PATHS: tuple[Path, ...] = ("lean", "observed", "streamed")


class Count(BaseModel):
    n: int


def _ended(text: str | None, finish_reason: FinishReason, tool_calls: list[ToolCall] | None = None) -> ModelResponse:
    return ModelResponse(
        message=Message.assistant(text, tool_calls),
        usage=TokenUsage(input_tokens=3, output_tokens=2, total_tokens=5, requests=1),
        finish_reason=finish_reason,
        model="scripted",
    )


async def _answer(agent: Agent, path: Path, output_type: type[BaseModel] | None = None) -> AgentOutput:
    if path != "streamed":
        return await agent.run("Tell me.", output_type=output_type)
    events = agent.stream("Tell me.", output_type=output_type)
    finals = [event.output async for event in events if isinstance(event, FinalOutput)]
    assert len(finals) == 1
    return finals[0]


def _agent(model: ScriptedModel, path: Path, **options: object) -> Agent:
    if path == "observed":
        bus = EventBus()
        bus.subscribe(lambda event: None)
        return Agent(model, event_bus=bus, **options)  # type: ignore[arg-type]
    return Agent(model, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("text", "finish_reason"),
    [("The whole answer.", "stop"), ("The answer was cut", "length"), (None, "content_filter")],
)
async def test_a_text_answer_carries_why_the_model_ended_it(
    path: Path, text: str | None, finish_reason: FinishReason
) -> None:
    output = await _answer(_agent(ScriptedModel([_ended(text, finish_reason)]), path), path)
    assert output.finish_reason == finish_reason
    assert output.content == (text or "")


@pytest.mark.parametrize("path", PATHS)
async def test_an_answer_after_a_tool_turn_carries_the_last_reply_s_reason(path: Path) -> None:
    @tool
    async def lookup(n: int) -> int:
        """Look `n` up."""
        return n

    model = ScriptedModel([tool_calls_reply(("lookup", '{"n": 1}')), _ended("Cut after the tool", "length")])
    output = await _answer(_agent(model, path, tools=[lookup]), path)
    assert output.finish_reason == "length"
    assert output.content == "Cut after the tool"


@pytest.mark.parametrize("path", PATHS)
async def test_a_structured_answer_by_the_output_tool_ends_stop(path: Path) -> None:
    call = ToolCall(id="out", name="final_result", arguments='{"n": 3}')
    model = ScriptedModel([_ended(None, "tool_calls", [call])])
    output = await _answer(_agent(model, path, structure_strategy="tool"), path, output_type=Count)
    assert output.data == Count(n=3)
    assert output.finish_reason == "stop"


async def test_a_run_paused_for_approval_ends_on_tool_calls() -> None:
    @tool(requires_approval=True)
    async def send(to: str) -> str:
        """Send to `to`."""
        return to

    output = await Agent(ScriptedModel([tool_calls_reply(("send", '{"to": "a"}'))]), tools=[send]).run("Go.")
    assert isinstance(output, PausedOutput)
    assert output.finish_reason == "tool_calls"
