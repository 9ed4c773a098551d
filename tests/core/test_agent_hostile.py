"""Malformed and hostile model outputs and tool events through a real `Agent`.

The class of inputs, not a list of bugs: whatever the model writes and whatever a tool does,
a run ends with an answer or a `GeckoError` (never another exception), no tool runs from an
ambiguous or over-cap batch or from arguments that would need coercion, and structured output
is never coerced. A corpus of named cases pins known shapes; hypothesis explores the rest.
Every test runs on asyncio and trio; the fuzzing runs streamed and not.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.events import FinalOutput
from gecko.core.structure import OUTPUT_TOOL_NAME
from gecko.core.toolbox import tool
from gecko.errors import GeckoError, ModelOutputError, StructuredOutputError
from gecko.plugins.models import ChatModel, ModelCapabilities, ModelChunk, ModelRequest, ModelResponse, ToolCallDelta
from gecko.testing.models import FunctionModel, Reply, ScriptedModel, reply, tool_calls_reply
from gecko.types import AgentOutput, Message, Role, TokenUsage, ToolCall

TOOLS_NO_SCHEMA = ModelCapabilities(tools=True, json_schema=False)


class Reading(BaseModel):
    name: str
    count: int
    share: float
    ok: bool


GOOD = '{"name": "a", "count": 2, "share": 0.5, "ok": true}'
GOOD_READING = Reading(name="a", count=2, share=0.5, ok=True)


@dataclass
class Harness:
    """An agent with one recording tool, `record(n: int)`, and a scripted model."""

    replies: list[Reply]
    output_type: type[BaseModel] | None = None
    capabilities: ModelCapabilities = field(default_factory=lambda: TOOLS_NO_SCHEMA)
    max_tool_calls_per_turn: int = 16
    tool_behaviour: Callable[[int], Any] | None = None
    runs: list[int] = field(default_factory=list)

    def agent(self) -> Agent:
        runs, behaviour = self.runs, self.tool_behaviour

        @tool
        async def record(n: int) -> Any:
            """Record `n`.

            Args:
                n: A number.
            """
            runs.append(n)
            return behaviour(n) if behaviour is not None else n

        model = ScriptedModel(self.replies, capabilities=self.capabilities)
        return Agent(
            model,
            tools=[record],
            output_type=self.output_type,
            max_tool_calls_per_turn=self.max_tool_calls_per_turn,
        )


def calls(*items: tuple[str, str, str]) -> ModelResponse:
    """A reply with tool calls given as `(id, name, arguments)`."""
    return tool_calls_reply(*(ToolCall(id=i, name=n, arguments=a) for i, n, a in items))


def length_cut(response: ModelResponse) -> ModelResponse:
    return response.model_copy(update={"finish_reason": "length"})


def many(count: int) -> ModelResponse:
    return calls(*((f"c{n}", "record", json.dumps({"n": n})) for n in range(count)))


def text(content: str, finish_reason: str = "stop") -> ModelResponse:
    return ModelResponse(
        message=Message.assistant(content),
        usage=TokenUsage(input_tokens=1, output_tokens=1, total_tokens=2, requests=1),
        finish_reason=finish_reason,  # type: ignore[arg-type]
    )


# --- tool-call batches: refused whole, or validated call by call -----------------------------

REFUSED_BATCHES = {
    "duplicate ids": calls(("x", "record", '{"n": 1}'), ("x", "record", '{"n": 2}')),
    "duplicate ids among valid ones": calls(
        ("a", "record", '{"n": 1}'), ("b", "record", '{"n": 2}'), ("a", "record", '{"n": 3}')
    ),
    "a call without an id": calls(("", "record", '{"n": 1}')),
    "a blank id beside a good call": calls(("ok", "record", '{"n": 1}'), ("  ", "record", '{"n": 2}')),
    "17 calls over the default cap of 16": many(17),
    "200 calls": many(200),
}


@pytest.mark.parametrize("batch", REFUSED_BATCHES.values(), ids=REFUSED_BATCHES.keys())
async def test_an_ambiguous_or_over_cap_batch_runs_no_tool_and_is_re_asked(batch: ModelResponse) -> None:
    harness = Harness([batch, "done"])
    output = await harness.agent().run("go")
    assert harness.runs == []
    assert output.content == "done"
    refusal = output.messages[-2]
    assert refusal.role is Role.USER
    assert "none ran" in refusal.text
    # The refused reply stays as text only, so every tool call in the history is answered.
    assert not any(message.tool_calls for message in output.messages)


async def test_a_model_that_keeps_sending_refused_batches_ends_with_a_typed_error() -> None:
    harness = Harness([many(40)] * 3)
    with pytest.raises(ModelOutputError, match="at most 16"):
        await harness.agent().run("go")
    assert harness.runs == []


async def test_the_cap_per_turn_is_configurable_and_exactly_the_cap_runs() -> None:
    harness = Harness([many(3), many(2), "done"], max_tool_calls_per_turn=2)
    output = await harness.agent().run("go")
    assert sorted(harness.runs) == [0, 1]
    assert output.content == "done"


NO_RUN_CALLS = {
    "a string for an int": '{"n": "1"}',
    "a bool for an int": '{"n": true}',
    "a float for an int": '{"n": 1.0}',
    "a repeated key": '{"n": 1, "n": 2}',
    "an unknown key": '{"n": 1, "m": 2}',
    "not JSON": "{n: 1",
    "an array": "[1]",
    "null": "null",
    "a string": '"n"',
    "nesting 10 000 deep": '{"n": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "a huge number": '{"n": ' + "9" * 100_000 + "}",
    "NaN": '{"n": NaN}',
    "a lone surrogate": '{"n": "\\ud800"}',
    "NUL bytes": '{"n": "\\u0000"}',
}


@pytest.mark.parametrize("arguments", NO_RUN_CALLS.values(), ids=NO_RUN_CALLS.keys())
async def test_invalid_arguments_never_run_the_tool_and_are_never_coerced(arguments: str) -> None:
    harness = Harness([calls(("c1", "record", arguments)), "done"])
    output = await harness.agent().run("go")
    assert harness.runs == []
    observation = output.messages[-2]
    assert (observation.role, observation.text.startswith("Error:")) == (Role.TOOL, True)


BAD_NAMES = {"unknown": "erase_disk", "empty": "", "unicode look-alike": "rec\u043erd", "output tool": OUTPUT_TOOL_NAME}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
async def test_unknown_tool_names_never_run(name: str) -> None:
    harness = Harness([calls(("c1", name, '{"n": 1}')), "done"])
    assert (await harness.agent().run("go")).content == "done"
    assert harness.runs == []


async def test_calls_cut_off_by_the_length_limit_never_run() -> None:
    harness = Harness([length_cut(calls(("c1", "record", '{"n": 1}'))), "done"])
    await harness.agent().run("go")
    assert harness.runs == []


# --- hostile tool behaviour --------------------------------------------------------------------


def _deep(_: int) -> object:
    value: list[object] = []
    for _ in range(10_000):
        value = [value]
    return value


def _raise_cancelled(_: int) -> object:
    raise asyncio.CancelledError("not the run's cancellation")


def _raise_secret(_: int) -> object:
    raise RuntimeError("cannot connect to redis://:hunter2@cache:6379/0 with password=hunter2")


def _raise_recursion(_: int) -> object:
    raise RecursionError("maximum recursion depth exceeded")


TOOL_BEHAVIOURS: dict[str, tuple[Callable[[int], Any], str]] = {
    "a result nested 10 000 deep": (_deep, "nested too deeply"),
    "a 5 MiB result": (lambda _: "x" * (5 * 1024 * 1024), "tool result truncated"),
    "its own CancelledError": (_raise_cancelled, "CancelledError"),
    "a secret in its error": (_raise_secret, "[REDACTED]"),
    "a RecursionError": (_raise_recursion, "RecursionError"),
    "an object JSON cannot hold": (lambda _: object(), "object"),
}


@pytest.mark.parametrize(("behaviour", "expected"), TOOL_BEHAVIOURS.values(), ids=TOOL_BEHAVIOURS.keys())
async def test_a_hostile_tool_becomes_a_bounded_observation(behaviour: Callable[[int], Any], expected: str) -> None:
    harness = Harness([calls(("c1", "record", '{"n": 1}')), "done"], tool_behaviour=behaviour)
    output = await harness.agent().run("go")
    observation = output.messages[-2]
    assert output.content == "done"
    assert expected in observation.text
    assert "hunter2" not in observation.text
    assert len(observation.text) < 60_000


# --- structured output: strict, unambiguous, bounded -------------------------------------------

STRUCTURED_REJECTS = {
    "true for a float": GOOD.replace('"share": 0.5', '"share": true'),
    "a string for a float": GOOD.replace('"share": 0.5', '"share": "0.5"'),
    "a string for an int": GOOD.replace('"count": 2', '"count": "2"'),
    "a float for an int": GOOD.replace('"count": 2', '"count": 2.0'),
    "1 for a bool": GOOD.replace('"ok": true', '"ok": 1'),
    "a repeated key": GOOD.replace('"count": 2', '"count": 2, "count": 3'),
    "a repeated key in repaired JSON": "{'name': 'a', 'count': 2, 'count': 3, 'share': 0.5, 'ok': True}",
    "two objects": GOOD + GOOD,
    "two objects in prose": f"Either {GOOD} or {GOOD.replace('0.5', '0.7')}.",
    "two fenced blocks": f"```json\n{GOOD}\n```\n```json\n{GOOD}\n```",
    "NaN": GOOD.replace("0.5", "NaN"),
    "Infinity": GOOD.replace("0.5", "Infinity"),
    "1e999": GOOD.replace("0.5", "1e999"),
    "a 5000-digit number": GOOD.replace('"count": 2', '"count": ' + "9" * 5000),
    "nesting 10 000 deep": '{"name": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "truncated JSON": GOOD[:-5],
    "an empty reply": "",
    "prose only": "I think the answer is two.",
    "an array": f"[{GOOD}]",
}


@pytest.mark.parametrize("bad", STRUCTURED_REJECTS.values(), ids=STRUCTURED_REJECTS.keys())
async def test_a_hostile_structured_reply_is_re_asked_never_coerced(bad: str) -> None:
    model = ScriptedModel([bad, GOOD], capabilities=TOOLS_NO_SCHEMA)
    output = await Agent(model, output_type=Reading).run("go")
    assert output.data == GOOD_READING
    assert len(model.requests) == 2
    reasks = [m for m in model.requests[1].messages if m.role is Role.USER][1:]
    assert len(reasks) == 1  # the bad reply was answered with a re-ask giving the reason


async def test_a_structured_reply_cut_by_the_length_limit_is_re_asked() -> None:
    model = ScriptedModel([text(GOOD, "length"), GOOD], capabilities=TOOLS_NO_SCHEMA)
    assert (await Agent(model, output_type=Reading).run("go")).data == GOOD_READING


async def test_two_output_tool_calls_are_re_asked() -> None:
    twice = calls(("o1", OUTPUT_TOOL_NAME, GOOD), ("o2", OUTPUT_TOOL_NAME, GOOD.replace('"a"', '"b"')))
    model = ScriptedModel([twice, calls(("o3", OUTPUT_TOOL_NAME, GOOD))], capabilities=TOOLS_NO_SCHEMA)
    output = await Agent(model, output_type=Reading).run("go")
    assert output.data == GOOD_READING
    answered = [m.tool_call_id for m in model.requests[1].messages if m.role is Role.TOOL]
    assert sorted(answered) == ["o1", "o2"]


async def test_a_model_that_never_answers_validly_ends_with_a_typed_error() -> None:
    model = ScriptedModel([GOOD.replace('"ok": true', '"ok": "yes"')], cycle=True, capabilities=TOOLS_NO_SCHEMA)
    with pytest.raises(StructuredOutputError, match="ok"):
        await Agent(model, output_type=Reading, max_turns=20).run("go")


async def test_lax_coercion_happens_only_when_asked_for() -> None:
    coercible = GOOD.replace('"share": 0.5', '"share": "0.5"')
    strict = ScriptedModel([coercible, GOOD], capabilities=TOOLS_NO_SCHEMA)
    lax = ScriptedModel([coercible], capabilities=TOOLS_NO_SCHEMA)
    assert (await Agent(strict, output_type=Reading).run("go")).data == GOOD_READING
    assert len(strict.requests) == 2
    assert (await Agent(lax, output_type=Reading, structure_lax=True).run("go")).data == GOOD_READING
    assert len(lax.requests) == 1


# --- hostile streams: tool calls assembled from fragments --------------------------------------


class ChunkModel(ChatModel):
    """Streams scripted chunk lists, one list per request; `complete` is never used by `Agent.stream`."""

    provider = "chunks"

    def __init__(self, turns: list[list[ModelChunk]]) -> None:
        self.turns = turns
        self.position = 0
        self.capabilities = ModelCapabilities(tools=True, streaming=True)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        raise AssertionError("the agent streams")

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[ModelChunk]:
        turn = self.turns[self.position] if self.position < len(self.turns) else [ModelChunk(text="done")]
        self.position += 1
        for chunk in turn:
            yield chunk


def delta(index: int, *, id: str | None = None, name: str | None = None, arguments: str = "") -> ModelChunk:
    return ModelChunk(tool_calls=[ToolCallDelta(index=index, id=id, name=name, arguments=arguments)])


HOSTILE_STREAMS: dict[str, tuple[list[ModelChunk], int]] = {
    "100 calls in fragments": ([delta(n, id=f"c{n}", name="record", arguments='{"n": 1}') for n in range(100)], 0),
    "two indices sharing an id": (
        [delta(0, id="x", name="record", arguments='{"n": 1}'), delta(1, id="x", name="record", arguments='{"n": 2}')],
        0,
    ),
    "a call that never gets a name": ([delta(0, id="c0", arguments='{"n": 1}')], 0),
    "arguments cut by the length limit": (
        [delta(0, id="c0", name="record", arguments='{"n": 1'), ModelChunk(finish_reason="length")],
        0,
    ),
    "a name and arguments in many pieces": (
        [delta(0, id="c0", name="rec"), delta(0, name="ord"), delta(0, arguments='{"n"'), delta(0, arguments=": 7}")],
        1,
    ),
}


@pytest.mark.parametrize(("chunks", "runs"), HOSTILE_STREAMS.values(), ids=HOSTILE_STREAMS.keys())
async def test_hostile_streamed_tool_calls_run_only_when_whole_and_admissible(
    chunks: list[ModelChunk], runs: int
) -> None:
    harness = Harness([])
    agent = harness.agent()
    streamed = Agent(ChunkModel([chunks]), tools=agent.toolbox)
    events = [event async for event in streamed.stream("go")]
    final = events[-1]
    assert isinstance(final, FinalOutput)
    assert final.output.content == "done"
    assert len(harness.runs) == runs


# --- fuzzing: any reply sequence, through a real agent -----------------------------------------

_ids = st.sampled_from(["a", "b", "c", "", " "])
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_argument_texts = st.one_of(
    _json_scalars.map(lambda value: json.dumps({"n": value})),
    st.dictionaries(st.sampled_from(["n", "m", "N"]), _json_scalars, max_size=3).map(json.dumps),
    st.text(max_size=30),
    st.just('{"n": 1, "n": 2}'),
)


@st.composite
def _tool_turns(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    size = draw(st.sampled_from([0, 1, 2, 3, 5, 17]))
    return [
        (draw(_ids), draw(st.sampled_from(["record", "record", "nope", ""])), draw(_argument_texts))
        for _ in range(size)
    ]


_words = st.text(alphabet="abc xyz", max_size=5)
_ints = st.integers(min_value=-1000, max_value=1000)
_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
# Valid values and the near misses lax validation would coerce (numeric strings, bools, 0/1).
_reading_values = st.fixed_dictionaries(
    {
        "name": st.one_of(_words, _ints),
        "count": st.one_of(_ints, st.booleans(), _ints.map(str), _ints.map(float)),
        "share": st.one_of(_floats, st.booleans(), _floats.map(str), _ints),
        "ok": st.one_of(st.booleans(), st.integers(min_value=0, max_value=1), st.sampled_from(["true", "false"])),
    }
)
_wrappings = st.sampled_from(
    [
        lambda body: body,
        lambda body: f"Here: {body} ok",
        lambda body: f"```json\n{body}\n```",
        lambda body: f"{body} {body}",
        lambda body: body + "}",
        lambda body: body[:-1],
    ]
)


def _reading_text(draw: st.DrawFn) -> str:
    return draw(_wrappings)(json.dumps(draw(_reading_values)))


@st.composite
def _turns(draw: st.DrawFn) -> list[Reply]:
    turns: list[Reply] = []
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        kind = draw(st.sampled_from(["tools", "text", "reading", "output_tool"]))
        if kind == "tools":
            turns.append(calls(*draw(_tool_turns())))
        elif kind == "text":
            turns.append(text(draw(st.text(max_size=40)), draw(st.sampled_from(["stop", "length"]))))
        elif kind == "reading":
            turns.append(_reading_text(draw))
        else:
            turns.append(calls((draw(_ids), OUTPUT_TOOL_NAME, _reading_text(draw))))
    return turns


def _admissible(response: ModelResponse, cap: int, streaming: bool) -> bool:
    ids = [call.id for call in response.message.tool_calls]
    if streaming:
        # A stream names each call by its index; `StreamAccumulator` gives an unnamed one `call_<index>`.
        ids = [i or f"call_{index}" for index, i in enumerate(ids)]
    return len(ids) <= cap and all(i.strip() for i in ids) and len(set(ids)) == len(ids)


def _strict_reading(text_value: str) -> bool:
    """Whether some JSON object in `text_value` validates as `Reading` without coercion."""
    for match in re.finditer(r"\{[^{}]*\}", text_value):
        try:
            Reading.model_validate_json(match.group(), strict=True)
        except ValueError:
            continue
        return True
    return False


@given(turns=_turns(), structured=st.booleans(), streaming=st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
async def test_fuzzed_replies_end_typed_run_only_admissible_valid_calls_and_never_coerce(
    turns: list[Reply], structured: bool, streaming: bool
) -> None:
    responses = [item if isinstance(item, ModelResponse) else reply(item) for item in turns]
    executed: list[int] = []
    sent: list[ModelResponse] = []

    @tool
    async def record(n: int) -> int:
        """Record `n`."""
        executed.append(n)
        return n

    def respond(request: ModelRequest) -> ModelResponse:
        response = responses[len(sent)] if len(sent) < len(responses) else reply("done")
        sent.append(response)
        return response

    model = FunctionModel(respond, capabilities=ModelCapabilities(tools=True, json_schema=False))
    agent = Agent(model, tools=[record], output_type=Reading if structured else None, max_tool_calls_per_turn=4)
    output: AgentOutput | None = None
    try:
        if streaming:
            async for event in agent.stream("go"):
                if isinstance(event, FinalOutput):
                    output = event.output
        else:
            output = await agent.run("go")
    except GeckoError:
        output = None
    # Every executed call came from an admissible batch, with an int `n` sent exactly as an int.
    allowed: list[int] = []
    for response in sent:
        if not _admissible(response, 4, streaming) or response.finish_reason == "length":
            continue
        for call in response.message.tool_calls:
            try:
                arguments = json.loads(call.arguments)
            except ValueError:
                continue
            if call.name == "record" and isinstance(arguments, dict) and set(arguments) == {"n"}:
                value = arguments["n"]
                if type(value) is int and call.arguments.count('"n"') == 1:
                    allowed.append(value)
    assert all(n in allowed for n in executed)
    if output is not None and structured:
        assert isinstance(output.data, Reading)
        accepted = sent[-1].message
        source = accepted.tool_calls[0].arguments if accepted.tool_calls else accepted.text
        assert _strict_reading(source)
