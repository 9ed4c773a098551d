"""Agents on the local model, in-process: the whole stack on a real (tiny) language model."""

from __future__ import annotations

from gecko_models_llamacpp import LlamaCppChat
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.events import FinalOutput, TextDelta


class Pet(BaseModel):
    name: str
    species: str
    age: int


async def test_agent_run_returns_the_model_text_and_usage(local_model: LlamaCppChat) -> None:
    output = await Agent(local_model).run("Say hello in one short sentence.")
    assert output.content.strip()
    assert output.usage.requests == 1
    assert output.usage.output_tokens > 0


async def test_agent_stream_yields_deltas_that_make_the_final_output(local_model: LlamaCppChat) -> None:
    events = [event async for event in Agent(local_model).stream("Name two fruits.")]
    deltas = "".join(event.text for event in events if isinstance(event, TextDelta))
    final = [event for event in events if isinstance(event, FinalOutput)]
    assert deltas.strip()
    assert len(final) == 1
    assert final[0].output.content == deltas


async def test_agent_structured_output_is_a_validated_model(local_model: LlamaCppChat) -> None:
    output = await Agent(local_model).run("Invent a pet dog called Rex.", output_type=Pet)
    assert isinstance(output.data, Pet)
    assert output.usage.requests == 1
