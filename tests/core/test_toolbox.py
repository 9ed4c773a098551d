"""ToolBox and @tool: schemas, strict validation, safe failures, timeouts and bounded concurrency."""

from __future__ import annotations

import asyncio
import json
import threading

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gecko.core.agent import Agent
from gecko.core.toolbox import DEFAULT_MAX_RESULT_CHARS, Tool, ToolBox, ToolResult, tool
from gecko.errors import (
    ConfigurationError,
    ToolArgumentsError,
    ToolExecutionError,
    ToolTimeoutError,
    UnknownToolError,
)
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import Role, ToolCall


@tool
async def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b (int): The second addend,
            one by default.
    """
    return a + b


def call(name: str, arguments: object = None, raw: str | None = None) -> ToolCall:
    return ToolCall(id="c1", name=name, arguments=raw if raw is not None else json.dumps(arguments or {}))


def test_schema_comes_from_type_hints() -> None:
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.parameters["required"] == ["a"]


def test_schema_forbids_unknown_keys() -> None:
    assert add.parameters["additionalProperties"] is False


def test_docstring_gives_description_and_parameter_descriptions() -> None:
    assert add.description == "Add two integers."
    assert add.parameters["properties"]["b"]["description"] == "The second addend, one by default."


def test_decorator_options_are_applied() -> None:
    @tool(name="lookup", description="Find things.", timeout=3, requires_approval=True)
    def find(query: str) -> str:
        return query

    assert (find.name, find.description, find.timeout, find.requires_approval) == ("lookup", "Find things.", 3, True)


def test_definition_carries_name_description_and_schema() -> None:
    definition = add.definition()
    assert (definition.name, definition.parameters) == ("add", add.parameters)


def test_tool_stays_callable() -> None:
    @tool
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8


def test_parameters_named_like_basemodel_attributes_work() -> None:
    @tool
    def shadow(json: str, schema: int) -> str:
        return json * schema

    assert ToolBox([shadow]).validate(call("shadow", {"json": "a", "schema": 2})) == {"json": "a", "schema": 2}


def test_var_keyword_parameters_are_rejected() -> None:
    def loose(**kwargs: int) -> None:
        return None

    with pytest.raises(ConfigurationError, match="kwargs"):
        tool(loose)


def test_invalid_tool_name_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="tool name"):
        tool(name="has space")(lambda: None)


def test_duplicate_tool_names_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="already registered"):
        ToolBox([add, add])


def test_plain_function_is_wrapped_on_add() -> None:
    def ping() -> str:
        return "pong"

    box = ToolBox()
    assert isinstance(box.add(ping), Tool)
    assert box.names == ("ping",)


def test_validate_returns_keyword_arguments_with_defaults() -> None:
    assert ToolBox([add]).validate(call("add", {"a": 2})) == {"a": 2, "b": 1}


def test_string_is_not_coerced_to_int() -> None:
    with pytest.raises(ToolArgumentsError, match="a: Input should be a valid integer"):
        ToolBox([add]).validate(call("add", {"a": "5"}))


def test_bool_is_not_coerced_to_int() -> None:
    with pytest.raises(ToolArgumentsError, match="valid integer"):
        ToolBox([add]).validate(call("add", {"a": True}))


def test_unknown_argument_key_is_rejected() -> None:
    with pytest.raises(ToolArgumentsError, match="c: Extra inputs are not permitted"):
        ToolBox([add]).validate(call("add", {"a": 1, "c": 2}))


class Point(BaseModel):
    x: int
    y: int


def test_nested_model_arguments_are_validated() -> None:
    @tool
    def norm(p: Point) -> int:
        return abs(p.x) + abs(p.y)

    arguments = ToolBox([norm]).validate(call("norm", {"p": {"x": 1, "y": -2}}))
    assert arguments["p"] == Point(x=1, y=-2)


def test_empty_arguments_mean_no_arguments() -> None:
    @tool
    def now() -> str:
        return "noon"

    assert ToolBox([now]).validate(call("now", raw="")) == {}


def test_unknown_tool_error_lists_valid_names() -> None:
    with pytest.raises(UnknownToolError, match="Valid tools: add"):
        ToolBox([add]).validate(call("delete_everything"))


def test_oversized_arguments_are_rejected_before_parsing() -> None:
    huge = '{"a": 1, "pad": "' + "x" * 1_000_000 + '"}'
    with pytest.raises(ToolArgumentsError, match="limit is 65536"):
        ToolBox([add]).validate(call("add", raw=huge))


def test_size_cap_counts_utf8_bytes() -> None:
    box = ToolBox([add], max_argument_bytes=100)
    with pytest.raises(ToolArgumentsError, match="bytes"):
        box.validate(call("add", raw='{"a": "' + "é" * 60 + '"}'))


def test_deep_nesting_is_an_arguments_error() -> None:
    @tool
    def take(data: object) -> str:
        return "ran"

    with pytest.raises(ToolArgumentsError, match="Invalid"):
        ToolBox([take]).validate(call("take", raw='{"data": ' + "[" * 5000 + "]" * 5000 + "}"))


def test_truncated_json_is_an_arguments_error() -> None:
    with pytest.raises(ToolArgumentsError, match="Invalid JSON"):
        ToolBox([add]).validate(call("add", raw='{"a": 1'))


def test_non_finite_float_is_rejected() -> None:
    @tool
    def scale(f: float) -> float:
        return f

    with pytest.raises(ToolArgumentsError):
        ToolBox([scale]).validate(call("scale", raw='{"f": 1e999}'))


async def test_execute_runs_async_tool() -> None:
    result = await ToolBox([add]).execute(call("add", {"a": 2, "b": 3}))
    assert result == ToolResult(call("add", {"a": 2, "b": 3}), "5")


async def test_execute_runs_sync_tool_in_worker_thread() -> None:
    @tool
    def where() -> bool:
        return threading.current_thread() is not threading.main_thread()

    assert (await ToolBox([where]).execute(call("where"))).content == "true"


async def test_non_string_results_are_json() -> None:
    @tool
    async def info() -> dict[str, object]:
        return {"ok": True, "n": [1, 2]}

    assert json.loads((await ToolBox([info]).execute(call("info"))).content) == {"ok": True, "n": [1, 2]}


async def test_bad_arguments_never_run_the_tool() -> None:
    ran: list[int] = []

    @tool
    async def record(n: int) -> int:
        ran.append(n)
        return n

    result = await ToolBox([record]).execute(call("record", {"n": "1"}))
    assert (result.is_error, isinstance(result.error, ToolArgumentsError), ran) == (True, True, [])


async def test_unknown_tool_result_tells_model_the_valid_names() -> None:
    result = await ToolBox([add]).execute(call("nope"))
    assert result.is_error
    assert isinstance(result.error, UnknownToolError)
    assert "Valid tools: add" in result.content


async def test_tool_exception_becomes_short_message_without_traceback() -> None:
    @tool
    async def boom() -> None:
        raise ValueError("bad input\nTraceback (most recent call last): secret internals")

    result = await ToolBox([boom]).execute(call("boom"))
    assert result.content == "Error: Tool 'boom' failed: ValueError: bad input"
    assert isinstance(result.error, ToolExecutionError)


async def test_tool_exception_redacts_secrets() -> None:
    @tool
    async def leak() -> None:
        raise RuntimeError("auth failed for api_key=sk-abcdef1234567890 password: hunter2 Bearer abcdefghijkl")

    content = (await ToolBox([leak]).execute(call("leak"))).content
    assert ("sk-abcdef" in content, "hunter2" in content, "abcdefghijkl" in content) == (False, False, False)


async def test_long_exception_message_is_truncated() -> None:
    @tool
    async def verbose() -> None:
        raise RuntimeError("x" * 5000)

    assert len((await ToolBox([verbose]).execute(call("verbose"))).content) < 300


async def test_tool_timeout_becomes_timeout_result() -> None:
    @tool(timeout=0.05)
    async def slow() -> str:
        await anyio.sleep(10)
        return "late"

    result = await ToolBox([slow]).execute(call("slow"))
    assert isinstance(result.error, ToolTimeoutError)


async def test_default_timeout_applies_to_tools_without_one() -> None:
    @tool
    async def slow() -> str:
        await anyio.sleep(10)
        return "late"

    result = await ToolBox([slow], default_timeout=0.05).execute(call("slow"))
    assert isinstance(result.error, ToolTimeoutError)


async def test_timeout_error_raised_by_tool_is_an_execution_error() -> None:
    @tool
    async def upstream() -> None:
        raise TimeoutError("upstream timed out")

    result = await ToolBox([upstream]).execute(call("upstream"))
    assert isinstance(result.error, ToolExecutionError)


async def test_cancellation_propagates_out_of_execute() -> None:
    started = anyio.Event()
    results: list[ToolResult] = []

    @tool
    async def wait() -> str:
        started.set()
        await anyio.sleep(10)
        return "never"

    async def run() -> None:
        results.append(await ToolBox([wait]).execute(call("wait")))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await started.wait()
        group.cancel_scope.cancel()
    assert results == []


async def test_execute_many_keeps_call_order() -> None:
    @tool
    async def echo(n: int) -> int:
        await anyio.sleep(0.01 * (5 - n))
        return n

    calls = [ToolCall(id=str(n), name="echo", arguments=json.dumps({"n": n})) for n in range(5)]
    results = await ToolBox([echo]).execute_many(calls)
    assert [result.content for result in results] == ["0", "1", "2", "3", "4"]


async def test_execute_many_respects_max_parallel() -> None:
    running = 0
    peak = 0

    @tool
    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return n

    calls = [ToolCall(id=str(n), name="work", arguments=json.dumps({"n": n})) for n in range(6)]
    await ToolBox([work], max_parallel=2).execute_many(calls)
    assert peak == 2


async def test_execute_many_runs_calls_concurrently() -> None:
    both = anyio.Event()
    arrived = 0

    @tool
    async def meet() -> str:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        await both.wait()
        return "met"

    calls = [ToolCall(id=str(n), name="meet", arguments="{}") for n in range(2)]
    with anyio.fail_after(5):
        results = await ToolBox([meet]).execute_many(calls)
    assert [result.content for result in results] == ["met", "met"]


async def test_execute_many_reports_bad_calls_beside_good_ones() -> None:
    results = await ToolBox([add]).execute_many([call("add", {"a": 1}), call("missing")])
    assert [result.is_error for result in results] == [False, True]


def test_result_becomes_tool_message() -> None:
    message = ToolResult(call("add"), "3").to_message()
    assert (message.role, message.tool_call_id, message.content, message.name) == (Role.TOOL, "c1", "3", "add")


async def test_execute_validated_runs_the_arguments_validate_returned() -> None:
    seen: list[dict[str, object]] = []

    @tool
    async def record(a: int, b: int) -> int:
        """Record the arguments."""
        seen.append({"a": a, "b": b})
        return a + b

    box = ToolBox([record])
    request = call("record", {"a": 2, "b": 3})
    result = await box.execute_validated(request, box.validate(request))
    assert (result.content, result.is_error, seen) == ("5", False, [{"a": 2, "b": 3}])


async def test_execute_many_validated_keeps_call_order_and_reports_failures_per_call() -> None:
    @tool
    async def divide(a: int, b: int) -> float:
        """Divide a by b."""
        await anyio.sleep(0.01 if b == 1 else 0)
        return a / b

    box = ToolBox([divide])
    requests = [call("divide", {"a": 6, "b": 1}), call("divide", {"a": 1, "b": 0}), call("divide", {"a": 8, "b": 2})]
    results = await box.execute_many_validated([(request, box.validate(request)) for request in requests])
    assert [(result.call.id, result.is_error) for result in results] == [
        (r.id, e) for r, e in zip(requests, [False, True, False], strict=True)
    ]
    assert [results[0].content, results[2].content] == ["6.0", "4.0"]


# --- hostile results, own cancellations, repeated keys, one capped path ----------------------


def test_a_repeated_argument_key_is_ambiguous_and_refused() -> None:
    with pytest.raises(ToolArgumentsError, match="appears twice"):
        ToolBox([add]).validate(call("add", raw='{"a": 1, "a": 2}'))


def test_a_repeated_key_inside_a_nested_argument_is_refused() -> None:
    @tool
    def where(point: Point) -> int:
        """Where."""
        return point.x

    with pytest.raises(ToolArgumentsError, match="appears twice"):
        ToolBox([where]).validate(call("where", raw='{"point": {"x": 1, "y": 2, "x": 3}}'))


async def test_a_long_result_is_cut_with_a_marker_naming_both_sizes() -> None:
    @tool
    def dump() -> str:
        """Dump."""
        return "x" * 5_000_000

    result = await ToolBox([dump], max_result_chars=1000).execute(call("dump"))
    assert result.content.startswith("x" * 1000)
    assert result.content.endswith("[tool result truncated: showing the first 1000 of 5000000 characters]")
    assert len(result.content) < 1100


async def test_the_default_result_cap_bounds_what_the_model_reads() -> None:
    @tool
    def dump() -> list[int]:
        """Dump."""
        return list(range(1_000_000))

    result = await ToolBox([dump]).execute(call("dump"))
    assert len(result.content) < DEFAULT_MAX_RESULT_CHARS + 200
    assert "tool result truncated" in result.content


def test_max_result_chars_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="max_result_chars"):
        ToolBox(max_result_chars=0)


async def test_a_result_nested_ten_thousand_deep_is_a_tool_error() -> None:
    @tool
    def deep() -> object:
        """Deep."""
        value: list[object] = []
        for _ in range(10_000):
            value = [value]
        return value

    result = await ToolBox([deep]).execute(call("deep"))
    assert isinstance(result.error, ToolExecutionError)
    assert "nested too deeply" in result.content


@pytest.mark.parametrize(
    ("returned", "content"),
    [
        ("a\ud800b", "a\ufffdb"),
        ("\udc00" * 3, "\ufffd" * 3),
        ("\ud83d\ude00 and \ud83d", "\U0001f600 and \ufffd"),  # a pair is its character
        ("é\x00", "é\x00"),
    ],
    ids=["a lone high surrogate", "lone low surrogates", "a pair and a lone one", "no surrogate"],
)
async def test_a_result_holding_lone_surrogates_reads_them_as_replacement_characters(
    returned: str, content: str
) -> None:
    # Before, the text went on as it was: a session store refused it after the run, losing the answer.
    @tool
    def odd() -> str:
        """Odd text."""
        return returned

    result = await ToolBox([odd]).execute(call("odd"))
    assert (result.content, result.is_error) == (content, False)
    model = ScriptedModel([tool_calls_reply(("odd", "{}")), "done"])
    storage = MemoryStorage()
    output = await Agent(model, tools=[odd], storage=storage, session_id="s").run("go")
    assert output.content == "done"
    assert output.messages[-2].text == content


async def test_an_error_message_holding_a_lone_surrogate_reads_it_as_a_replacement_character() -> None:
    @tool
    def odd() -> str:
        """Fails oddly."""
        raise ValueError("bad \ud800 text")

    result = await ToolBox([odd]).execute(call("odd"))
    assert isinstance(result.error, ToolExecutionError)
    assert result.content == "Error: Tool 'odd' failed: ValueError: bad \ufffd text"


async def test_a_tool_raising_cancelled_error_itself_is_a_failed_tool() -> None:
    @tool
    async def rude() -> str:
        """Raise asyncio's cancellation from the tool's own code."""
        raise asyncio.CancelledError("the tool's own cancellation")

    result = await ToolBox([rude]).execute(call("rude"))
    assert isinstance(result.error, ToolExecutionError)
    assert "CancelledError" in result.content


async def test_a_sync_tool_raising_cancelled_error_in_its_thread_is_a_failed_tool() -> None:
    @tool
    def rude() -> str:
        """Raise asyncio's cancellation from a worker thread."""
        raise asyncio.CancelledError

    result = await ToolBox([rude]).execute(call("rude"))
    assert isinstance(result.error, ToolExecutionError)


async def test_a_tool_raising_cancellation_does_not_hide_a_real_cancellation() -> None:
    started = anyio.Event()

    @tool
    async def rude() -> str:
        """Raise a cancellation of its own once the run is being cancelled."""
        started.set()
        try:
            await anyio.sleep(10)
        finally:
            raise asyncio.CancelledError

    results: list[ToolResult] = []

    async def run() -> None:
        results.append(await ToolBox([rude]).execute(call("rude")))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(run)
            await started.wait()
            group.cancel_scope.cancel()
    assert results == []


async def test_execute_many_validated_holds_max_parallel_for_a_custom_runner() -> None:
    running = 0
    peak = 0

    @tool
    async def work(n: int) -> int:
        """Work."""
        return n

    box = ToolBox([work], max_parallel=2)

    async def runner(request: ToolCall, arguments: dict[str, object]) -> ToolResult:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return await box.execute_validated(request, arguments)

    requests = [ToolCall(id=str(n), name="work", arguments=json.dumps({"n": n})) for n in range(8)]
    results = await box.execute_many_validated([(r, box.validate(r)) for r in requests], runner=runner)
    assert [result.content for result in results] == [str(n) for n in range(8)]
    assert peak == 2


@tool
def tally(counts: dict[str, int]) -> int:
    """Sum the counts."""
    return sum(counts.values())


def _spelled(key: str, ascii_only: bool, escape_slashes: bool) -> str:
    text = json.dumps(key, ensure_ascii=ascii_only)
    return text.replace("/", "\\/") if escape_slashes else text


# Each key spelled its own way: the same key may appear as "é" and "\u00e9", or "a/" and "a\/".
_spelled_pairs = st.lists(
    st.tuples(st.sampled_from(["é", "a/", "b", 'é/"', "\\", "\n"]), st.integers(0, 9), st.booleans(), st.booleans()),
    max_size=6,
)


@given(pairs=_spelled_pairs)
@example(pairs=[("é", 1, True, False), ("é", 2, False, False)])
@example(pairs=[("a/", 1, False, True), ("a/", 2, False, False)])
@settings(max_examples=300)
def test_a_repeated_key_is_refused_however_it_is_spelled(pairs: list[tuple[str, int, bool, bool]]) -> None:
    body = ", ".join(f"{_spelled(key, ascii_only, slashes)}: {value}" for key, value, ascii_only, slashes in pairs)
    request = call("tally", raw='{"counts": {' + body + "}}")
    box = ToolBox([tally])
    if len({key for key, *_ in pairs}) < len(pairs):
        with pytest.raises(ToolArgumentsError, match="appears twice"):
            box.validate(request)
    else:
        assert box.validate(request) == {"counts": {key: value for key, value, *_ in pairs}}


def test_tool_called_with_a_function_keeps_its_options() -> None:
    def lookup(word: str) -> str:
        return word

    made = tool(lookup, name="define", description="Define a word.", timeout=3, requires_approval=True)
    assert (made.name, made.description, made.timeout, made.requires_approval) == ("define", "Define a word.", 3, True)


class _Point(BaseModel):
    x: float


@tool
async def _loose(data: dict[str, object], anything: object, point: _Point | None = None) -> str:
    """Parameters whose types let any number through."""
    return "ran"


# A number no JSON writer sends on (NaN, Infinity, one past float64's range) is refused for a local
# tool too, wherever its parameter types would take it: a `dict`, `object` or a model of the user's.
NON_FINITE_ARGUMENTS = {
    "NaN in a dict": '{"data": {"k": NaN}, "anything": 1}',
    "Infinity as object": '{"data": {}, "anything": Infinity}',
    "-Infinity in a list": '{"data": {"k": [1, -Infinity]}, "anything": 1}',
    "1e400 as object": '{"data": {}, "anything": 1e400}',
    "1E+0400 in a dict": '{"data": {"k": 1E+0400}, "anything": 1}',
    "2e99 times 210 digits": '{"data": {}, "anything": 2' + "0" * 210 + "e99}",
    "310 digits and a fraction": '{"data": {}, "anything": 1' + "0" * 310 + ".5}",
    "1e400 in a user model": '{"data": {}, "anything": 1, "point": {"x": 1e400}}',
}


@pytest.mark.parametrize("arguments", NON_FINITE_ARGUMENTS.values(), ids=NON_FINITE_ARGUMENTS.keys())
def test_a_local_tool_refuses_numbers_that_are_not_finite_whatever_its_parameter_types(arguments: str) -> None:
    with pytest.raises(ToolArgumentsError, match="NaN, Infinity or past float64's range"):
        _loose.validate_arguments(arguments)


@pytest.mark.parametrize(
    "arguments",
    [
        '{"data": {"k": 1e308, "m": -5e-324, "n": 1e-400}, "anything": "NaN e123 Infinity"}',
        '{"data": {"big": ' + "9" * 400 + '}, "anything": 1}',
        '{"data": {}, "anything": 1, "point": {"x": 1.5e300}}',
    ],
    ids=["extreme finite floats and look-alike text", "a 400-digit integer", "a large finite float in a model"],
)
def test_a_local_tool_takes_finite_numbers_however_written(arguments: str) -> None:
    assert set(_loose.validate_arguments(arguments)) >= {"data", "anything"}
