"""`ModelConformance`: the chat-model contract as a pytest class every model plugin subclasses.

Subclass it in a test module, override the `model` fixture, and pytest runs every check:

```python
class TestMyModel(ModelConformance):
    @pytest.fixture
    def model(self) -> ChatModel:
        return MyChat(model="my-model", api_base=...)
```

Checks follow the model's declared `capabilities`: a declared capability must work, and a
missing one must be refused with `ModelBadRequestError` before anything is sent, so the
engines can rely on the flags. The model must answer the suite's prompts sensibly: a real
provider does; a test server can script them (see `gecko.testing.server`). The tests are
async and marked for anyio; provide an `anyio_backend` fixture to choose the event loop.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from gecko.errors import ModelBadRequestError
from gecko.plugins.models import (
    ChatModel,
    ModelCapabilities,
    ModelChunk,
    ModelRequest,
    ModelResponse,
    ResponseFormat,
    StreamAccumulator,
    ToolDefinition,
    model_registry,
)
from gecko.types import ImagePart, Message, Role, TextPart

__all__ = ("ModelConformance", "WEATHER_TOOL", "CITY_SCHEMA")

WEATHER_TOOL = ToolDefinition(
    name="get_weather",
    description="The current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
"""The tool the suite offers; a model asked to use it must call it with a `city`."""

CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
"""The schema of the suite's structured-output request."""

# A 1x1 transparent PNG.
_PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _plain_request() -> ModelRequest:
    return ModelRequest(messages=[Message.system("Answer briefly."), Message.user("Say hello.")])


def _tool_request() -> ModelRequest:
    return ModelRequest(
        messages=[Message.user("What is the weather in Paris? Use the get_weather tool.")],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )


def _json_request() -> ModelRequest:
    return ModelRequest(
        messages=[Message.user("Which city is the capital of France? Answer as JSON with a `city` field.")],
        response_format=ResponseFormat(type="json_schema", name="city", json_schema=CITY_SCHEMA),
    )


def _image_request() -> ModelRequest:
    content: list[TextPart | ImagePart] = [TextPart(text="Describe this image in one word."), ImagePart(url=_PIXEL)]
    return ModelRequest(messages=[Message.user(content)])


async def _collect(model: ChatModel, request: ModelRequest) -> list[ModelChunk]:
    return [chunk async for chunk in model.stream(request)]


def _assemble(chunks: list[ModelChunk]) -> ModelResponse:
    accumulator = StreamAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    return accumulator.response()


def _assert_weather_call(response: ModelResponse) -> None:
    calls = response.message.tool_calls
    assert calls, "a model declaring tools must call the tool when tool_choice is 'required'"
    assert calls[0].name == WEATHER_TOOL.name
    assert calls[0].id
    arguments = json.loads(calls[0].arguments)
    assert isinstance(arguments, dict)
    assert isinstance(arguments.get("city"), str)
    assert response.finish_reason == "tool_calls"


class ModelConformance:
    """The checks every `ChatModel` plugin passes; subclass and override `model`."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.anyio]

    @pytest.fixture
    def model(self) -> ChatModel:
        """The model under test; subclasses must override this fixture."""
        pytest.fail(f"{type(self).__name__} must override the `model` fixture of ModelConformance")

    # --- identity ------------------------------------------------------------------------

    def test_provider_resolves_to_its_class(self, model: ChatModel) -> None:
        assert model_registry.get(type(model).provider) is type(model)

    def test_capabilities_are_declared(self, model: ChatModel) -> None:
        assert isinstance(model.capabilities, ModelCapabilities)

    # --- plain answers ---------------------------------------------------------------------

    async def test_complete_returns_assistant_text_with_usage(self, model: ChatModel) -> None:
        response = await model.complete(_plain_request())
        assert response.message.role is Role.ASSISTANT
        assert response.message.text
        assert response.finish_reason == "stop"
        assert response.usage.requests == 1
        assert response.usage.input_tokens > 0
        assert response.usage.output_tokens > 0

    async def test_stream_ends_with_usage_and_assembles_to_text(self, model: ChatModel) -> None:
        chunks = await _collect(model, _plain_request())
        assert all(isinstance(chunk, ModelChunk) for chunk in chunks)
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.requests == 1
        assert chunks[-1].usage.output_tokens > 0
        assert _assemble(chunks).message.text

    async def test_stream_is_incremental_only_when_declared(self, model: ChatModel) -> None:
        chunks = await _collect(model, _plain_request())
        if not model.capabilities.streaming:
            assert len(chunks) == 1, "a model without streaming replays its complete reply as one chunk"
        else:
            assert sum(1 for chunk in chunks if chunk.text) >= 1

    # --- tools ---------------------------------------------------------------------------

    async def test_tool_call_when_declared_else_refused(self, model: ChatModel) -> None:
        if not model.capabilities.tools:
            with pytest.raises(ModelBadRequestError):
                await model.complete(_tool_request())
            return
        _assert_weather_call(await model.complete(_tool_request()))

    async def test_streamed_tool_call_assembles_like_complete(self, model: ChatModel) -> None:
        if not model.capabilities.tools:
            with pytest.raises(ModelBadRequestError):
                await _collect(model, _tool_request())
            return
        _assert_weather_call(_assemble(await _collect(model, _tool_request())))

    async def test_tool_result_round_trip_gets_an_answer(self, model: ChatModel) -> None:
        if not model.capabilities.tools:
            with pytest.raises(ModelBadRequestError):
                await model.complete(_tool_request())
            return
        first = await model.complete(_tool_request())
        call = first.message.tool_calls[0]
        follow_up = ModelRequest(
            messages=[
                *_tool_request().messages,
                first.message,
                Message.tool(call.id, "Sunny, 21 °C", name=call.name),
            ],
            tools=[WEATHER_TOOL],
            tool_choice="none",
        )
        answer = await model.complete(follow_up)
        assert answer.message.text
        assert not answer.message.tool_calls

    # --- structured output, grammar, vision ----------------------------------------------

    async def test_json_schema_when_declared_else_refused(self, model: ChatModel) -> None:
        if not model.capabilities.json_schema:
            with pytest.raises(ModelBadRequestError):
                await model.complete(_json_request())
            return
        response = await model.complete(_json_request())
        data = json.loads(response.message.text)
        assert isinstance(data["city"], str)

    async def test_grammar_refused_unless_declared(self, model: ChatModel) -> None:
        request = ModelRequest(
            messages=[Message.user("Which city is the capital of France? Answer as JSON.")],
            response_format=ResponseFormat(type="grammar", name="city", json_schema=CITY_SCHEMA),
        )
        if not model.capabilities.grammar:
            with pytest.raises(ModelBadRequestError):
                await model.complete(request)
            return
        assert isinstance(json.loads((await model.complete(request)).message.text)["city"], str)

    async def test_image_input_when_declared_else_refused(self, model: ChatModel) -> None:
        if not model.capabilities.vision:
            with pytest.raises(ModelBadRequestError):
                await model.complete(_image_request())
            return
        assert (await model.complete(_image_request())).message.text
