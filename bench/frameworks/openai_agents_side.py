"""OpenAI Agents SDK's side of each workload, on a scripted ``Model`` subclass.

``Agent`` + ``Runner.run`` for W4/W5, ``output_type`` for W7. The SDK has no graph engine or
checkpointer: W1-W3 and W8 are unsupported.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from agents import Agent, Model, ModelResponse, function_tool, set_tracing_disabled
from agents import Runner as AgentRunner
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from frameworks import WORK, Reply, Runner, UnsupportedError, add, concurrent_runs, scripted_replies, sequential_runs

IMPORT_STATEMENT = "from agents import Agent, Runner"

set_tracing_disabled(True)

_Script = Callable[[str | list[Any]], Awaitable[ModelResponse]]


class _ScriptedModel(Model):
    """A ``Model`` whose response is computed by ``script`` from the input items."""

    def __init__(self, script: _Script) -> None:
        self._script = script

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        WORK["model calls"] += 1
        return await self._script(input)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the scripted model does not stream")


def _response(item: Any) -> ModelResponse:
    return ModelResponse(output=[item], usage=Usage(), response_id=None)


def _message(text: str) -> ModelResponse:
    content = ResponseOutputText(annotations=[], text=text, type="output_text")
    return _response(
        ResponseOutputMessage(id="msg", content=[content], role="assistant", status="completed", type="message")
    )


def _add_then_answer(latency_s: float) -> _Script:
    async def script(items: str | list[Any]) -> ModelResponse:
        if latency_s:
            await asyncio.sleep(latency_s)
        last = items[-1] if isinstance(items, list) else {}
        if last.get("type") == "function_call_output":
            return _message(f"The sum is {last['output']}.")
        return _response(
            ResponseFunctionToolCall(type="function_call", call_id="call_add", name="add", arguments='{"a": 2, "b": 3}')
        )

    return script


async def w1_chain(n: int) -> Runner:
    """UnsupportedError: the SDK has no graph engine."""
    raise UnsupportedError("openai-agents has no graph engine")


async def w2a_fanout(width: int) -> Runner:
    """UnsupportedError: the SDK has no graph engine."""
    raise UnsupportedError("openai-agents has no graph engine")


async def w2b_fanout_sleep(width: int, sleep_s: float) -> Runner:
    """UnsupportedError: the SDK has no graph engine."""
    raise UnsupportedError("openai-agents has no graph engine")


async def w3_checkpoint(n: int, synchronous: str, db: Path) -> Runner:
    """UnsupportedError: the SDK has no graph engine to checkpoint."""
    raise UnsupportedError("openai-agents has no graph engine")


def _agent(latency_s: float) -> Agent[Any]:
    return Agent(name="adder", model=_ScriptedModel(_add_then_answer(latency_s)), tools=[function_tool(add)])


async def _ask(agent: Agent[Any]) -> object:
    return (await AgentRunner.run(agent, "What is 2 + 3?")).final_output


async def w4_agent(runs: int) -> Runner:
    """``runs`` sequential ``Runner.run`` calls with the function tool ``add``."""
    agent = _agent(0.0)
    return sequential_runs(lambda: _ask(agent), runs)


async def w5_agents(agents: int, latency_s: float) -> Runner:
    """``agents`` concurrent ``Runner.run`` calls, the model sleeping ``latency_s`` per call."""
    agent = _agent(latency_s)
    return concurrent_runs(lambda: _ask(agent), agents)


async def w7_structured(replies: int) -> Runner:
    """``Agent(output_type=Reply)``: the model answers one JSON document per run."""
    documents = itertools.cycle(scripted_replies(replies))

    async def next_reply(items: str | list[Any]) -> ModelResponse:
        return _message(next(documents))

    agent = Agent(name="describer", model=_ScriptedModel(next_reply), output_type=Reply)

    async def run() -> None:
        for _ in range(replies):
            result = await AgentRunner.run(agent, "Describe the user.")
            assert isinstance(result.final_output, Reply)
            WORK["outputs"] += 1

    return run


async def w8_uneven(long_s: float, short_s: float, chain: int) -> Runner:
    """UnsupportedError: the SDK has no graph engine."""
    raise UnsupportedError("openai-agents has no graph engine")
