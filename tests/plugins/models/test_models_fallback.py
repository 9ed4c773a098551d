from __future__ import annotations

import pytest
from gecko_models import FallbackModel, LiteLLMChat

from gecko.errors import ModelAuthenticationError, ModelServerError
from gecko.plugins.models import ModelRequest, RetryPolicy, StreamAccumulator
from gecko.testing.server import OpenAIServer, error
from gecko.types import Message

HELLO = ModelRequest(messages=[Message.user("hi")])


def _model(server: OpenAIServer) -> LiteLLMChat:
    return LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=RetryPolicy(max_attempts=1))


async def test_next_model_answers_when_the_first_fails_with_a_configured_error() -> None:
    async with OpenAIServer([error(500)]) as first, OpenAIServer(["backup"]) as second:
        model = FallbackModel([_model(first), _model(second)], on=(ModelServerError,))
        assert (await model.complete(HELLO)).message.text == "backup"


async def test_errors_not_configured_are_raised_without_trying_the_next() -> None:
    async with OpenAIServer([error(401)]) as first, OpenAIServer(["backup"]) as second:
        model = FallbackModel([_model(first), _model(second)], on=(ModelServerError,))
        with pytest.raises(ModelAuthenticationError):
            await model.complete(HELLO)
        assert second.requests == []


async def test_last_models_error_is_raised_when_all_fail() -> None:
    async with OpenAIServer([error(500)]) as first, OpenAIServer([error(503)]) as second:
        with pytest.raises(ModelServerError):
            await FallbackModel([_model(first), _model(second)]).complete(HELLO)


async def test_stream_falls_back_when_the_first_stream_fails_to_open() -> None:
    async with OpenAIServer([error(500)]) as first, OpenAIServer(["streamed backup"]) as second:
        accumulator = StreamAccumulator()
        async for chunk in FallbackModel([_model(first), _model(second)]).stream(HELLO):
            accumulator.add(chunk)
    assert accumulator.response().message.text == "streamed backup"
