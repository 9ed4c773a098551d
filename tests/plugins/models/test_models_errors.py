from __future__ import annotations

import json

import anyio
import pytest
from gecko_models import LiteLLMChat

from gecko.errors import (
    ContextLengthError,
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
)
from gecko.plugins.models import ModelCapabilities, ModelRequest, RetryPolicy
from gecko.testing.server import HTTPReply, OpenAIServer, error, malformed, slow
from gecko.types import ImagePart, Message, TextPart

HELLO = ModelRequest(messages=[Message.user("hi")])


def _model(base_url: str, retry: RetryPolicy, **settings: object) -> LiteLLMChat:
    return LiteLLMChat("openai/m", api_key="k", api_base=base_url, retry=retry, **settings)  # type: ignore[arg-type]


async def test_rate_limit_with_retry_after_is_retried_once_after_the_hint() -> None:
    async with OpenAIServer([error(429, retry_after=1), "after the wait"]) as server:
        retry = RetryPolicy(max_attempts=3, initial_delay=0.01, total_timeout=10)
        response = await _model(server.base_url, retry).complete(HELLO)
        first, second = server.requests
    assert response.message.text == "after the wait"
    assert second.received_at - first.received_at >= 0.9


async def test_rate_limit_error_carries_retry_after_when_attempts_run_out() -> None:
    async with OpenAIServer([error(429, retry_after=7)]) as server:
        with pytest.raises(ModelRateLimitError) as caught:
            await _model(server.base_url, RetryPolicy(max_attempts=1)).complete(HELLO)
    assert caught.value.retry_after == 7


@pytest.mark.parametrize("hint", ["1000000000", "1e9", "Fri, 01 Jan 2100 00:00:00 GMT"])
async def test_a_retry_after_beyond_max_retry_after_fails_at_once_with_the_servers_hint(hint: str) -> None:
    answer = HTTPReply(
        429, b'{"error": {"message": "slow down"}}', {"Content-Type": "application/json", "Retry-After": hint}
    )
    async with OpenAIServer([answer, "never reached"]) as server:
        retry = RetryPolicy(max_attempts=3, initial_delay=0.01, total_timeout=None)
        with anyio.fail_after(30), pytest.raises(ModelRateLimitError, match="retry after") as caught:
            await _model(server.base_url, retry).complete(HELLO)
        assert len(server.requests) == 1
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > RetryPolicy().max_retry_after


async def test_server_errors_are_retried_up_to_max_attempts_and_no_more(fast_retry: RetryPolicy) -> None:
    async with OpenAIServer([error(500), error(502), error(503), "never reached"]) as server:
        with pytest.raises(ModelServerError):
            await _model(server.base_url, fast_retry).complete(HELLO)
        assert len(server.requests) == fast_retry.max_attempts


async def test_authentication_failure_is_typed_and_not_retried(fast_retry: RetryPolicy) -> None:
    async with OpenAIServer([error(401, "bad key"), "never reached"]) as server:
        with pytest.raises(ModelAuthenticationError, match="api_key"):
            await _model(server.base_url, fast_retry).complete(HELLO)
        assert len(server.requests) == 1


async def test_bad_request_is_typed_and_not_retried(fast_retry: RetryPolicy) -> None:
    async with OpenAIServer([error(400, "unknown parameter"), "never reached"]) as server:
        with pytest.raises(ModelBadRequestError):
            await _model(server.base_url, fast_retry).complete(HELLO)
        assert len(server.requests) == 1


async def test_context_overflow_is_a_context_length_error(fast_retry: RetryPolicy) -> None:
    overflow = error(400, "This model's maximum context length is 8192 tokens", code="context_length_exceeded")
    async with OpenAIServer([overflow]) as server:
        with pytest.raises(ContextLengthError):
            await _model(server.base_url, fast_retry).complete(HELLO)


async def test_malformed_body_is_a_server_error(fast_retry: RetryPolicy) -> None:
    async with OpenAIServer([malformed()], cycle=True) as server:
        with pytest.raises(ModelServerError):
            await _model(server.base_url, fast_retry).complete(HELLO)


async def test_slow_answer_beyond_timeout_is_a_timeout_error() -> None:
    async with OpenAIServer([slow("late", 5)]) as server:
        with pytest.raises(ModelTimeoutError):
            await _model(server.base_url, RetryPolicy(max_attempts=1), timeout=0.3).complete(HELLO)


async def test_total_time_bounds_a_hanging_endpoint() -> None:
    async with OpenAIServer(["warmed up", slow("late", 30)]) as server:
        # An unbounded first call loads litellm, which on a busy machine alone can outlast `fail_after`.
        await _model(server.base_url, RetryPolicy(max_attempts=1, total_timeout=None)).complete(HELLO)
        retry = RetryPolicy(max_attempts=10, total_timeout=0.5)
        with anyio.fail_after(10), pytest.raises(ModelTimeoutError):
            await _model(server.base_url, retry, timeout=30).complete(HELLO)


async def test_dead_endpoint_fails_within_total_time_with_a_connection_error(closed_port_url: str) -> None:
    # One unbounded attempt first: the client's first call loads and sets up litellm, which on a
    # busy machine alone can outlast the budget below (and is then, rightly, a timeout). A later
    # retry cut off by the budget still reports the connection error that caused it.
    with pytest.raises(ModelConnectionError):
        await _model(closed_port_url, RetryPolicy(max_attempts=1, total_timeout=None)).complete(HELLO)
    retry = RetryPolicy(max_attempts=100, initial_delay=0.05, max_delay=0.2, total_timeout=1.0)
    with anyio.fail_after(10), pytest.raises(ModelConnectionError, match="api_base"):
        await _model(closed_port_url, retry).complete(HELLO)


async def test_stream_open_is_retried_on_rate_limit(fast_retry: RetryPolicy) -> None:
    async with OpenAIServer([error(429), "streamed"]) as server:
        chunks = [c async for c in _model(server.base_url, fast_retry).stream(HELLO)]
    assert "".join(c.text for c in chunks) == "streamed"


def _broken_stream(*contents: str) -> HTTPReply:
    """A 200 event stream: a role chunk, a chunk per text in `contents`, then an error event and the end."""
    chunks = [{"role": "assistant", "content": ""}] + [{"content": text} for text in contents]
    events: list[dict[str, object]] = [
        {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": delta}]}
        for delta in chunks
    ]
    events.append({"error": {"message": "the backend crashed mid-reply", "type": "server_error"}})
    body = "".join(f"data: {json.dumps(event)}\n\n" for event in events)
    return HTTPReply(status=200, body=body.encode(), headers={"Content-Type": "text/event-stream"})


async def test_stream_failing_before_any_text_is_asked_again(fast_retry: RetryPolicy) -> None:
    async with OpenAIServer([_broken_stream(), "streamed"]) as server:
        chunks = [c async for c in _model(server.base_url, fast_retry).stream(HELLO)]
    assert "".join(c.text for c in chunks) == "streamed"


async def test_stream_failing_after_text_is_raised_typed_and_not_asked_again(fast_retry: RetryPolicy) -> None:
    async with OpenAIServer([_broken_stream("Hel", "lo"), "never reached"]) as server:
        received: list[str] = []

        async def consume() -> None:
            async for chunk in _model(server.base_url, fast_retry).stream(HELLO):
                received.append(chunk.text)

        with pytest.raises(ModelServerError, match="crashed mid-reply"):
            await consume()
        assert len(server.requests) == 1
    assert received == ["Hel", "lo"]


async def test_undeclared_capability_is_refused_before_sending(fast_retry: RetryPolicy) -> None:
    image = ModelRequest(messages=[Message.user([TextPart(text="what?"), ImagePart(url="data:image/png;base64,AA==")])])
    async with OpenAIServer(["never reached"]) as server:
        model = _model(server.base_url, fast_retry, capabilities=ModelCapabilities(vision=False))
        with pytest.raises(ModelBadRequestError, match="vision"):
            await model.complete(image)
        assert server.requests == []
