"""What `SummaryTokenMemory`'s summarizer spends within an agent run is charged to that run
(`current_run_usage`), as a hook's model calls are: counted in the run's usage and output, held to its
`UsageLimits` before each summary request, and checked again before the run's own request.

The summarizer and the agent's model are the test models (the only fakes: the remote model API).
"""

from __future__ import annotations

import anyio
import pytest

from gecko.core.agent import Agent
from gecko.core.events import FinalOutput
from gecko.core.memory import SummaryTokenMemory
from gecko.core.state import UsageLimits
from gecko.errors import UsageLimitExceeded
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import ScriptedModel, reply
from gecko.types import AgentOutput, Message, TokenUsage


def _history(turns: int) -> list[Message]:
    messages: list[Message] = []
    for turn in range(turns):
        messages += [Message.user(f"question {turn} " + "word " * 20), Message.assistant(f"answer {turn} " + "x " * 20)]
    return messages


def _summarizing_agent(summarizer: ScriptedModel, model: ScriptedModel) -> Agent:
    return Agent(model, memory=SummaryTokenMemory(summarizer, max_tokens=400))


async def _finished(agent: Agent, stream: bool, limits: UsageLimits | None = None) -> AgentOutput:
    messages = [*_history(30), Message.user("and now?")]
    if not stream:
        return await agent.run(messages, usage_limits=limits)
    outputs = [
        event.output async for event in agent.stream(messages, usage_limits=limits) if isinstance(event, FinalOutput)
    ]
    [output] = outputs
    return output


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_the_summary_request_is_in_the_run_s_usage(stream: bool) -> None:
    summarizer = ScriptedModel([reply("the user asked 30 questions", input_tokens=300, output_tokens=20)])

    output = await _finished(_summarizing_agent(summarizer, ScriptedModel(["done"])), stream)

    assert len(summarizer.requests) == 1
    assert output.usage == TokenUsage(input_tokens=310, output_tokens=25, total_tokens=335, requests=2)


@pytest.mark.parametrize(
    ("stream", "limits", "sent", "error"),
    [
        # The summary takes the one request the budget allows; the run's own request is not sent.
        (False, UsageLimits(max_requests=1), (1, 0), "max_requests=1"),
        (True, UsageLimits(max_requests=1), (1, 0), "max_requests=1"),
        # The summary's 15 tokens are checked before the run's own request.
        (False, UsageLimits(max_total_tokens=10), (1, 0), "max_total_tokens=10"),
        # No summary request past the budget.
        (False, UsageLimits(max_requests=0), (0, 0), "max_requests=0"),
    ],
    ids=["max_requests-run", "max_requests-stream", "tokens-after-the-summary", "none-left"],
)
async def test_the_summary_request_is_held_to_the_run_s_budget(
    stream: bool, limits: UsageLimits, sent: tuple[int, int], error: str
) -> None:
    summarizer = ScriptedModel(["summary"])
    model = ScriptedModel(["done"])

    with pytest.raises(UsageLimitExceeded, match=error):
        await _finished(_summarizing_agent(summarizer, model), stream, limits)

    assert (len(summarizer.requests), len(model.requests)) == sent


async def test_a_run_stopped_by_its_budget_leaves_the_shared_summary_to_the_next_caller() -> None:
    # Both runs share one memory (and its single flight, held across processes through the storage's lease):
    # the first is stopped by its budget before its summary request; the second is not failed by that budget.
    summarizer = ScriptedModel([reply("summary", input_tokens=300, output_tokens=20)])
    memory = SummaryTokenMemory(summarizer, max_tokens=400, storage=MemoryStorage())
    outcomes: dict[str, object] = {}

    async def run(name: str, limits: UsageLimits | None) -> None:
        try:
            outcomes[name] = await Agent(ScriptedModel(["done"]), memory=memory).run(
                [*_history(30), Message.user("and now?")], usage_limits=limits
            )
        except UsageLimitExceeded as exc:
            outcomes[name] = exc

    async with anyio.create_task_group() as group:
        group.start_soon(run, "stopped", UsageLimits(max_requests=0))
        group.start_soon(run, "free", None)

    assert isinstance(outcomes["stopped"], UsageLimitExceeded)
    free = outcomes["free"]
    assert isinstance(free, AgentOutput)
    assert free.usage == TokenUsage(input_tokens=310, output_tokens=25, total_tokens=335, requests=2)
    assert len(summarizer.requests) == 1
