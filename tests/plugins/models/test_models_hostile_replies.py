"""Hostile replies over real HTTP through litellm: each ends typed or as the right result, and no bad call runs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gecko_models import LiteLLMChat

from gecko.core.agent import Agent
from gecko.core.builder import AgentBuilder
from gecko.core.events import FinalOutput
from gecko.core.toolbox import tool
from gecko.errors import (
    ConfigurationError,
    ModelOutputError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
    UnsupportedRequestError,
)
from gecko.plugins.models import ModelRequest, RetryPolicy
from gecko.testing.models import reply, tool_calls_reply
from gecko.testing.server import HTTPReply, OpenAIServer, ScriptItem, trickle
from gecko.types import Message

ONCE = RetryPolicy(max_attempts=1)
HELLO = ModelRequest(messages=[Message.user("hi")])


def _json(body: object) -> HTTPReply:
    return HTTPReply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def _completion(message: object = None, *, choices: object = ..., usage: object = None) -> HTTPReply:
    listed = [{"index": 0, "message": message, "finish_reason": "stop"}] if choices is ... else choices
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": listed}
    return _json(body if usage is None else {**body, "usage": usage})


def _sse(*events: str, done: bool = True) -> HTTPReply:
    body = "".join(events) + ("data: [DONE]\n\n" if done else "")
    return HTTPReply(200, body.encode(), {"Content-Type": "text/event-stream"})


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
    return f"data: {json.dumps(body)}\n\n"


def _call_piece(index: int, arguments: str, *, call_id: str | None = None, name: str | None = None) -> str:
    piece: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        piece |= {"id": call_id, "type": "function"}
        piece["function"]["name"] = name
    return _chunk({"tool_calls": [piece]})


class Recorder:
    """An agent with an `echo` tool over the local server; `ran` lists what the tool was called with."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def agent(self, server: OpenAIServer) -> Agent:
        @tool
        def echo(text: str) -> str:
            """Echo the text."""
            self.ran.append(text)
            return f"echo:{text}"

        model = LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=ONCE)
        return AgentBuilder().with_model(model).with_tools([echo]).build()


# --- replies that are not a message ----------------------------------------------------------

NOT_A_MESSAGE: dict[str, HTTPReply] = {
    "content of the wrong type": _completion({"role": "assistant", "content": [{"type": "text", "text": "hi"}]}),
    "a null message": _completion(choices=[{"index": 0, "message": None, "finish_reason": "stop"}]),
    "a null choices list": _completion(choices=None),
    "tool calls that are not a list": _completion({"role": "assistant", "content": None, "tool_calls": {"id": "c"}}),
    "a body that is a list": HTTPReply(200, b"[1, 2]", {"Content-Type": "application/json"}),
    "an empty body": HTTPReply(200, b"", {"Content-Type": "application/json"}),
    "an HTML page": HTTPReply(200, b"<html>maintenance</html>", {"Content-Type": "text/html"}),
    "server-sent events to a request that did not stream": _sse(_chunk({"content": "hi"}), _chunk({}, "stop")),
    "no content at all (204)": HTTPReply(204, b""),
    "choices that are an object": _json({"choices": {"0": {"message": {"content": "hi"}}}}),
    "a choice without a message": _completion(choices=[{"index": 0, "finish_reason": "stop"}]),
    "a tool call without its function": _completion(
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]}
    ),
    "a body that is not UTF-8": HTTPReply(200, b'{"choices": [{"message": {"content": "\xff"}}]}'),
    "a body nested past any parser": HTTPReply(200, b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "NaN and text for token counts": HTTPReply(
        200,
        b'{"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, '
        b'"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}], '
        b'"usage": {"prompt_tokens": NaN, "completion_tokens": -5, "total_tokens": "lots"}}',
    ),
}


@pytest.mark.parametrize("answer", NOT_A_MESSAGE.values(), ids=NOT_A_MESSAGE.keys())
async def test_a_reply_that_is_not_a_message_is_a_typed_server_error(answer: HTTPReply) -> None:
    async with OpenAIServer([answer]) as server:
        with pytest.raises(ModelServerError):
            await LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=ONCE).complete(HELLO)


NOT_A_MESSAGE_TO_TOOLS = {
    **NOT_A_MESSAGE,
    "content that is a number": _completion({"role": "assistant", "content": 5}),
    "content that is an object": _completion({"role": "assistant", "content": {"text": "hi"}}),
    "a token count that is text": _completion({"role": "assistant", "content": "hi"}, usage={"prompt_tokens": "x"}),
}


@pytest.mark.parametrize("answer", NOT_A_MESSAGE_TO_TOOLS.values(), ids=NOT_A_MESSAGE_TO_TOOLS.keys())
async def test_a_reply_that_is_not_a_message_is_no_rejection_of_tools_and_the_next_run_still_sends_them(
    answer: HTTPReply,
) -> None:
    # litellm's trace of a reply it cannot read may quote "tool_calls" and "Input should be": that is the
    # reply's fault, not the endpoint refusing tools (which would refuse every later request with tools).
    recorder = Recorder()
    async with OpenAIServer([answer, tool_calls_reply(("echo", '{"text": "a"}')), reply("done")]) as server:
        agent = recorder.agent(server)
        with pytest.raises(ModelServerError) as caught:
            await agent.run("hi")
        assert not isinstance(caught.value, UnsupportedRequestError)
        assert (await agent.run("again")).content == "done"
        assert all(request["tools"] for request in server.chat_requests())
    assert recorder.ran == ["a"]


async def test_a_reply_without_choices_is_a_model_output_error_in_the_client_and_the_agent() -> None:
    empty = _completion(choices=[])
    async with OpenAIServer([empty, empty]) as server:
        with pytest.raises(ModelOutputError, match="no choices"):
            await LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=ONCE).complete(HELLO)
        recorder = Recorder()
        with pytest.raises(ModelOutputError, match="no choices"):
            await recorder.agent(server).run("hi")
    assert recorder.ran == []


async def test_a_null_content_without_tool_calls_is_an_empty_answer() -> None:
    recorder = Recorder()
    async with OpenAIServer([_completion({"role": "assistant", "content": None})]) as server:
        output = await recorder.agent(server).run("hi")
        assert len(server.chat_requests()) == 1
    assert (output.content, recorder.ran) == ("", [])


# --- tool calls the agent must refuse and re-ask --------------------------------------------

REFUSED_CALLS: dict[str, tuple[ScriptItem, str]] = {
    "arguments that are not JSON": (tool_calls_reply(("echo", "{text: x")), "Invalid arguments"),
    "a key given twice": (tool_calls_reply(("echo", '{"text": "a", "text": "b"}')), "a key appears twice"),
    "NaN for a string": (tool_calls_reply(("echo", '{"text": NaN}')), "Invalid arguments"),
    "a lone surrogate": (tool_calls_reply(("echo", '{"text": "\\ud800"}')), "Invalid arguments"),
    "a list, not an object": (tool_calls_reply(("echo", '["a"]')), "should be an object"),
    "no arguments at all": (tool_calls_reply(("echo", "")), "Field required"),
    "arguments nested 500 deep": (
        tool_calls_reply(("echo", '{"text": ' + "[" * 500 + "]" * 500 + "}")),
        "Invalid arguments",
    ),
    "five megabytes of text": (tool_calls_reply(("echo", json.dumps({"text": "x" * 5_000_000}))), "the limit is"),
    "an unknown tool": (tool_calls_reply(("rm_rf", "{}")), "Unknown tool 'rm_rf'"),
    "a call without a name": (
        _completion(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}],
            }
        ),
        "Unknown tool ''",
    ),
}


@pytest.mark.parametrize(("bad", "observed"), REFUSED_CALLS.values(), ids=REFUSED_CALLS.keys())
async def test_a_refused_tool_call_never_runs_and_the_model_is_told_why(bad: ScriptItem, observed: str) -> None:
    recorder = Recorder()
    async with OpenAIServer([bad, reply("done")]) as server:
        output = await recorder.agent(server).run("hi")
        observation = server.chat_requests()[1]["messages"][-1]
    assert (output.content, recorder.ran) == ("done", [])
    assert observation["role"] == "tool"
    assert observed in observation["content"]


async def test_arguments_sent_as_an_object_instead_of_a_string_run_with_those_arguments() -> None:
    recorder = Recorder()
    call = {"id": "c", "type": "function", "function": {"name": "echo", "arguments": {"text": "as object"}}}
    async with OpenAIServer(
        [_completion({"role": "assistant", "content": None, "tool_calls": [call]}), "done"]
    ) as server:
        output = await recorder.agent(server).run("hi")
    assert (output.content, recorder.ran) == ("done", ["as object"])


# --- streams ---------------------------------------------------------------------------------


async def _streamed(answer: HTTPReply) -> tuple[str, list[str], list[dict[str, Any]]]:
    """The final answer, the tool's runs and the second request's messages of a streamed run."""
    recorder = Recorder()
    async with OpenAIServer([answer, reply("done")]) as server:
        events = [event async for event in recorder.agent(server).stream("hi")]
        requests = server.chat_requests()
    final = events[-1]
    assert isinstance(final, FinalOutput)
    return final.output.content, recorder.ran, requests[-1]["messages"]


async def test_tool_call_pieces_out_of_index_order_are_assembled_by_index() -> None:
    stream = _sse(
        _call_piece(1, '{"text": ', call_id="b", name="echo"),
        _call_piece(0, '{"text": ', call_id="a", name="echo"),
        _call_piece(0, '"first"}'),
        _call_piece(1, '"second"}'),
        _chunk({}, "tool_calls"),
    )
    content, ran, messages = await _streamed(stream)
    assert (content, sorted(ran)) == ("done", ["first", "second"])  # the two calls run concurrently
    assert [call["id"] for call in messages[1]["tool_calls"]] == ["a", "b"]
    assert [(m["tool_call_id"], m["content"]) for m in messages[2:]] == [("a", "echo:first"), ("b", "echo:second")]


async def test_calls_streamed_at_one_index_with_their_own_ids_stay_separate_calls() -> None:
    stream = _sse(
        _call_piece(0, '{"text": ', call_id="a", name="echo"),
        _call_piece(0, '"first"}'),
        _call_piece(0, '{"text": "second"}', call_id="b", name="echo"),
        _chunk({}, "tool_calls"),
    )
    content, ran, messages = await _streamed(stream)
    assert (content, sorted(ran)) == ("done", ["first", "second"])
    assert [call["id"] for call in messages[1]["tool_calls"]] == ["a", "b"]


async def test_arguments_streamed_before_the_call_s_name_still_make_one_call() -> None:
    stream = _sse(
        _call_piece(0, '{"text": "x"}'), _call_piece(0, "", call_id="a", name="echo"), _chunk({}, "tool_calls")
    )
    assert (await _streamed(stream))[:2] == ("done", ["x"])


async def test_a_streamed_call_that_never_gets_a_name_never_runs() -> None:
    content, ran, messages = await _streamed(_sse(_call_piece(3, '{"text": "x"}'), _chunk({}, "tool_calls")))
    assert (content, ran) == ("done", [])
    assert "Unknown tool ''" in messages[-1]["content"]


async def test_a_stream_that_ends_without_done_keeps_its_text_and_text_after_the_finish_is_kept() -> None:
    cut = _sse(_chunk({"content": "hel"}), _chunk({"content": "lo"}), _chunk({}, "stop"), done=False)
    late = _sse(_chunk({"content": "a"}), _chunk({}, "stop"), _chunk({"content": "b"}))
    assert (await _streamed(cut))[:2] == ("hello", [])
    assert (await _streamed(late))[:2] == ("ab", [])


BROKEN_STREAMS: dict[str, HTTPReply] = {
    "a chunk that is not JSON": _sse(_chunk({"content": "hel"}), "data: {oops\n\n", _chunk({}, "stop")),
    "chunks without choices only": _sse(
        'data: {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}\n\n'
    ),
    "a chunk that is not UTF-8": HTTPReply(
        200,
        b'data: {"choices": [{"index": 0, "delta": {"content": "\xff"}}]}\n\ndata: [DONE]\n\n',
        {"Content-Type": "text/event-stream"},
    ),
}


@pytest.mark.parametrize("answer", BROKEN_STREAMS.values(), ids=BROKEN_STREAMS.keys())
async def test_a_broken_stream_is_a_typed_server_error_and_runs_nothing(answer: HTTPReply) -> None:
    recorder = Recorder()
    async with OpenAIServer([answer]) as server:
        with pytest.raises(ModelServerError):
            async for _ in recorder.agent(server).stream("hi"):
                pass
    assert recorder.ran == []


# --- fields of the wrong shape that litellm lets through ---------------------------------------

WRONG_SHAPES: dict[str, HTTPReply] = {
    "a tool call id that is a number": _completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": 5, "type": "function", "function": {"name": "echo", "arguments": "{}"}}],
        }
    ),
}


async def _fails_then_answers(agent: Agent, error: type[Exception], match: str) -> str:
    """Stream a run that must raise `error`, then the next run on the same agent; its answer."""
    with pytest.raises(error, match=match):
        async for _ in agent.stream("hi"):
            pass
    final = [event async for event in agent.stream("again")][-1]
    assert isinstance(final, FinalOutput)
    return final.output.content


@pytest.mark.parametrize("answer", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
async def test_a_field_of_the_wrong_shape_is_a_model_output_error_and_the_next_run_works(answer: HTTPReply) -> None:
    recorder = Recorder()
    async with OpenAIServer([answer, reply("done")]) as server:
        agent = recorder.agent(server)
        with pytest.raises(ModelOutputError, match="wrong shape"):
            await agent.run("hi")
        assert (await agent.run("again")).content == "done"
    assert recorder.ran == []


async def test_streamed_tool_calls_that_are_an_object_are_a_model_output_error() -> None:
    recorder = Recorder()
    async with OpenAIServer([_sse(_chunk({"tool_calls": {"index": 0, "id": "c"}}))]) as server:
        with pytest.raises(ModelOutputError, match="wrong shape"):
            async for _ in recorder.agent(server).stream("hi"):
                pass
    assert recorder.ran == []


# --- streams that carry no reply ---------------------------------------------------------------

NO_REPLY_STREAMS: dict[str, HTTPReply] = {
    "an empty body": _sse(done=False),
    "only [DONE]": _sse(),
    "a JSON completion instead of events": _completion({"role": "assistant", "content": "hi"}),
    "plain text": HTTPReply(200, b"hello", {"Content-Type": "text/plain"}),
    "data: null": _sse("data: null\n\n"),
    "events without the data: prefix": _sse(
        json.dumps({"choices": [{"index": 0, "delta": {"content": "hi"}}]}) + "\n\n"
    ),
}


@pytest.mark.parametrize("answer", NO_REPLY_STREAMS.values(), ids=NO_REPLY_STREAMS.keys())
async def test_a_stream_without_a_reply_is_a_server_error_not_an_empty_answer(answer: HTTPReply) -> None:
    recorder = Recorder()
    async with OpenAIServer([answer, reply("done")]) as server:
        content = await _fails_then_answers(recorder.agent(server), ModelServerError, "stream ended before the reply")
    assert (content, recorder.ran) == ("done", [])


BROKEN_STREAMS |= {
    "a chunk that is a list": _sse("data: [1, 2]\n\n"),
    "a chunk that is a string": _sse('data: "x"\n\n'),
    "a null choice": _sse('data: {"choices": [null]}\n\n'),
    "choices that are a string": _sse('data: {"choices": "abc"}\n\n'),
    "text cut before the finish reason": _sse(_chunk({"content": "hel"}), done=False),
}


# --- slow servers --------------------------------------------------------------------------------


async def test_a_reply_trickled_byte_by_byte_is_cut_off_by_the_timeout_and_retried() -> None:
    body = json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "slow"}, "finish_reason": "stop"}],
        }
    ).encode()
    slow_loris = trickle(HTTPReply(200, body, {"Content-Type": "application/json"}), 0.05)
    async with OpenAIServer([slow_loris, slow_loris, reply("fast")]) as server:
        once = LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=ONCE, timeout=0.5)
        with pytest.raises(ModelTimeoutError, match=r"within 0\.5 s"):
            await once.complete(HELLO)
        twice = LiteLLMChat(
            "openai/m", api_key="k", api_base=server.base_url, timeout=0.5, retry=RetryPolicy(2, initial_delay=0.01)
        )
        assert (await twice.complete(HELLO)).message.text == "fast"


async def test_a_stream_that_keeps_sending_comments_is_cut_off_between_pieces() -> None:
    first = _chunk({"content": "hel"})
    body = (first + ": keep-alive\n\n" * 2_000).encode()
    keep_alive = trickle(HTTPReply(200, body, {"Content-Type": "text/event-stream"}), 0.05, size=len(first))
    async with OpenAIServer([keep_alive, reply("done")]) as server:
        model = LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=ONCE, timeout=0.5)
        agent = AgentBuilder().with_model(model).build()
        assert await _fails_then_answers(agent, ModelTimeoutError, "between two pieces of the stream") == "done"


# --- odd numbers -----------------------------------------------------------------------------------


async def test_negative_token_counts_are_read_as_zero() -> None:
    usage = {"prompt_tokens": -7, "completion_tokens": -1, "total_tokens": -8}
    async with OpenAIServer([_completion({"role": "assistant", "content": "hi"}, usage=usage)]) as server:
        response = await LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=ONCE).complete(HELLO)
    assert (response.message.text, response.usage.input_tokens, response.usage.output_tokens) == ("hi", 0, 0)
    assert response.usage.total_tokens == 0


async def test_a_total_below_its_parts_is_their_sum_streamed_or_not() -> None:
    # A total of 1 beside 5 + 5 let a run slip under max_total_tokens, and the stream's reading said 10.
    usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 1}
    last = json.dumps(
        {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": usage}
    )
    streamed = _sse(_chunk({"role": "assistant", "content": "hi"}), _chunk({}, "stop"), f"data: {last}\n\n")
    async with OpenAIServer([_completion({"role": "assistant", "content": "hi"}, usage=usage), streamed]) as server:
        chat = LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=ONCE)
        whole = (await chat.complete(HELLO)).usage
        chunks = [chunk async for chunk in chat.stream(HELLO)]
    assert (whole.input_tokens, whole.output_tokens, whole.total_tokens) == (5, 5, 10)
    assert chunks[-1].usage == whole


@pytest.mark.parametrize("hint", ["inf", "nan", "-inf"])
async def test_a_retry_after_that_is_not_a_finite_number_is_no_hint(hint: str) -> None:
    answer = HTTPReply(
        429, b'{"error": {"message": "slow down"}}', {"Content-Type": "application/json", "Retry-After": hint}
    )
    async with OpenAIServer([answer]) as server:
        with pytest.raises(ModelRateLimitError) as info:
            await LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=ONCE).complete(HELLO)
    assert info.value.retry_after is None


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True])
def test_a_timeout_that_is_not_positive_seconds_is_a_configuration_error(timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a positive number of seconds"):
        LiteLLMChat("openai/m", api_key="k", timeout=timeout)
