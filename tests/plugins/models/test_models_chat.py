from __future__ import annotations

import json

from gecko_models import LiteLLMChat, ZhipuChat

from gecko.plugins.models import ModelRequest, StreamAccumulator, ToolDefinition
from gecko.testing.models import reply, tool_calls_reply
from gecko.testing.server import OpenAIServer
from gecko.types import Message, TokenUsage, ToolCall

ADD = ToolDefinition(
    name="add",
    description="Add two numbers.",
    parameters={"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
)


def _zhipu(server: OpenAIServer) -> ZhipuChat:
    return ZhipuChat(api_key="zhipu-test-key", model="glm-4-flash", api_base=server.base_url)


def _usage(input_tokens: int, output_tokens: int) -> TokenUsage:
    return TokenUsage(
        input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens, requests=1
    )


async def test_complete_returns_the_scripted_text_and_usage() -> None:
    async with OpenAIServer([reply("Bonjour", input_tokens=123, output_tokens=45)]) as server:
        response = await _zhipu(server).complete(ModelRequest(messages=[Message.user("hi")]))
    assert response.message.text == "Bonjour"
    assert response.usage == _usage(123, 45)
    assert response.finish_reason == "stop"


async def test_request_carries_model_key_and_temperature() -> None:
    async with OpenAIServer(["ok"]) as server:
        model = ZhipuChat(api_key="zhipu-test-key", model="glm-4-air", api_base=server.base_url, temperature=0.8)
        await model.complete(ModelRequest(messages=[Message.user("hi")]))
        sent = server.requests[0]
    assert sent.headers["authorization"] == "Bearer zhipu-test-key"
    assert sent.json()["model"] == "glm-4-air"
    assert sent.json()["temperature"] == 0.8


async def test_extra_parameters_are_sent() -> None:
    async with OpenAIServer(["ok"]) as server:
        model = LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, max_tokens=77, top_p=0.5)
        await model.complete(ModelRequest(messages=[Message.user("hi")]))
        body = server.chat_requests()[0]
    assert (body["max_tokens"], body["top_p"]) == (77, 0.5)


async def test_tool_calls_are_returned_with_raw_arguments() -> None:
    script = [tool_calls_reply(ToolCall(id="call_a", name="add", arguments='{"a": 1, "b": 2}'))]
    async with OpenAIServer(script) as server:
        response = await _zhipu(server).complete(ModelRequest(messages=[Message.user("1+2?")], tools=[ADD]))
        body = server.chat_requests()[0]
    assert response.message.tool_calls == [ToolCall(id="call_a", name="add", arguments='{"a": 1, "b": 2}')]
    assert response.finish_reason == "tool_calls"
    assert body["tools"][0] == {"type": "function", "function": ADD.model_dump()}


async def test_assistant_tool_call_message_is_sent_with_empty_content() -> None:
    history = [
        Message.user("1+2?"),
        Message.assistant(None, [ToolCall(id="call_a", name="add", arguments='{"a": 1, "b": 2}')]),
        Message.tool("call_a", "3", name="add"),
    ]
    async with OpenAIServer(["3"]) as server:
        await _zhipu(server).complete(ModelRequest(messages=history, tools=[ADD]))
        sent = server.chat_requests()[0]["messages"]
    assert sent[1]["content"] == ""
    assert sent[1]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1, "b": 2}'}
    assert sent[2] == {"role": "tool", "content": "3", "tool_call_id": "call_a", "name": "add"}


async def test_stream_yields_text_pieces_then_usage() -> None:
    async with OpenAIServer([reply("one two three", input_tokens=11, output_tokens=3)]) as server:
        chunks = [c async for c in _zhipu(server).stream(ModelRequest(messages=[Message.user("count")]))]
    assert [c.text for c in chunks if c.text] == ["one", " two", " three"]
    assert chunks[-1].usage == _usage(11, 3)
    assert chunks[-1].finish_reason == "stop"


async def test_stream_always_asks_for_usage() -> None:
    async with OpenAIServer(["ok"]) as server:
        async for _ in _zhipu(server).stream(ModelRequest(messages=[Message.user("hi")])):
            pass
        body = server.chat_requests()[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_stream_assembles_tool_call_deltas() -> None:
    calls = [
        ToolCall(id="call_a", name="add", arguments='{"a": 1, "b": 2}'),
        ToolCall(id="call_b", name="add", arguments='{"a": 30, "b": 12}'),
    ]
    async with OpenAIServer([tool_calls_reply(*calls)]) as server:
        accumulator = StreamAccumulator()
        async for chunk in _zhipu(server).stream(ModelRequest(messages=[Message.user("sums")], tools=[ADD])):
            accumulator.add(chunk)
    response = accumulator.response()
    assert response.message.tool_calls == calls
    assert response.finish_reason == "tool_calls"
    assert json.loads(response.message.tool_calls[1].arguments) == {"a": 30, "b": 12}


async def _multi_turn_usage(server: OpenAIServer, *, streamed: bool) -> TokenUsage:
    model = _zhipu(server)
    history = [Message.user("1+2?")]
    total = TokenUsage()
    for _ in range(2):
        request = ModelRequest(messages=history, tools=[ADD])
        if streamed:
            accumulator = StreamAccumulator()
            async for chunk in model.stream(request):
                accumulator.add(chunk)
            response = accumulator.response()
        else:
            response = await model.complete(request)
        total = total + response.usage
        history = [*history, response.message, *(Message.tool(c.id, "3") for c in response.message.tool_calls)]
    return total


MULTI_TURN = [
    tool_calls_reply(("add", '{"a": 1, "b": 2}'), input_tokens=101, output_tokens=17),
    reply("3", input_tokens=133, output_tokens=4),
]


async def test_usage_of_a_multi_turn_exchange_is_the_reported_sum() -> None:
    async with OpenAIServer(MULTI_TURN) as server:
        assert await _multi_turn_usage(server, streamed=False) == TokenUsage(
            input_tokens=234, output_tokens=21, total_tokens=255, requests=2
        )


async def test_streamed_usage_of_a_multi_turn_exchange_is_the_reported_sum() -> None:
    async with OpenAIServer(MULTI_TURN) as server:
        assert await _multi_turn_usage(server, streamed=True) == TokenUsage(
            input_tokens=234, output_tokens=21, total_tokens=255, requests=2
        )
