"""StructureEngine: strategies, tolerant parsing, bounds, re-asks and the standalone run."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gecko.core.structure import OUTPUT_TOOL_NAME, StructureEngine, parse_json_lenient
from gecko.errors import (
    ConfigurationError,
    ModelBadRequestError,
    StructuredOutputError,
    StructuredOutputInvalid,
    UnsupportedRequestError,
)
from gecko.plugins.models import ModelCapabilities, ModelRequest, ModelResponse, ToolDefinition
from gecko.testing.models import FunctionModel, ScriptedModel, reply, tool_calls_reply
from gecko.types import Message, Role, ToolCall


class Person(BaseModel):
    name: str
    age: int
    email: str
    score: float
    active: bool


class Tree(BaseModel):
    value: object


CLEAN = '{"name": "Ann", "age": 31, "email": "a@b.c", "score": 9.5, "active": true}'
ANN = Person(name="Ann", age=31, email="a@b.c", score=9.5, active=True)
engine = StructureEngine(Person)
ALL = ModelCapabilities(tools=True, json_schema=True, grammar=True)


def test_auto_orders_grammar_native_tool_prompted() -> None:
    assert engine.strategies(ALL) == ["grammar", "native", "tool", "prompted"]


def test_auto_skips_unsupported_strategies() -> None:
    assert engine.strategies(ModelCapabilities(tools=False, json_schema=False)) == ["prompted"]


def test_explicit_strategy_overrides_capabilities() -> None:
    assert StructureEngine(Person, strategy="tool").strategies(ALL) == ["tool"]


def test_unknown_strategy_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="strategy"):
        StructureEngine(Person, strategy="magic")  # type: ignore[arg-type]


def test_native_sets_json_schema_response_format() -> None:
    request = engine.prepare(ModelRequest(messages=[Message.user("hi")]), "native")
    assert request.response_format is not None
    assert (request.response_format.type, request.response_format.json_schema) == ("json_schema", engine.schema)


def test_grammar_sets_grammar_response_format() -> None:
    request = engine.prepare(ModelRequest(messages=[Message.user("hi")]), "grammar")
    assert request.response_format is not None
    assert request.response_format.type == "grammar"


def test_tool_adds_required_output_tool() -> None:
    request = engine.prepare(ModelRequest(messages=[Message.user("hi")]), "tool")
    assert ([t.name for t in request.tools], request.tool_choice) == ([OUTPUT_TOOL_NAME], "required")


def test_prompted_appends_schema_as_system_message() -> None:
    request = engine.prepare(ModelRequest(messages=[Message.user("hi")]), "prompted")
    assert request.messages[-1].role == Role.SYSTEM
    assert '"age"' in request.messages[-1].text


def test_prepare_leaves_the_original_request_alone() -> None:
    original = ModelRequest(messages=[Message.user("hi")])
    engine.prepare(original, "prompted")
    assert len(original.messages) == 1


def test_parse_clean_json() -> None:
    assert engine.parse(reply(CLEAN), "native") == ANN


def test_parse_tool_call_arguments() -> None:
    assert engine.parse(tool_calls_reply((OUTPUT_TOOL_NAME, CLEAN)), "tool") == ANN


def test_is_output_call_recognises_the_output_tool() -> None:
    assert engine.is_output_call(tool_calls_reply((OUTPUT_TOOL_NAME, CLEAN)).message, "tool")


def test_parse_tolerates_fences_and_prose() -> None:
    assert engine.parse(reply(f"Sure! Here it is:\n```json\n{CLEAN}\n```\nAnything else?"), "prompted") == ANN


def test_parse_tolerates_trailing_commas_single_quotes_and_python_literals() -> None:
    text = "{'name': 'Ann', 'age': 31, 'email': 'a@b.c', 'score': 9.5, 'active': True,}"
    assert engine.parse(reply(text), "prompted") == ANN


def test_truncated_reply_is_never_accepted() -> None:
    response = ModelResponse(message=Message.assistant(CLEAN), finish_reason="length")
    with pytest.raises(StructuredOutputInvalid, match="cut off"):
        engine.parse(response, "native")


def test_truncated_json_is_an_error() -> None:
    with pytest.raises(StructuredOutputInvalid, match="cut off"):
        engine.parse(reply(CLEAN[:-10]), "prompted")


def test_wrong_types_are_reported_by_field() -> None:
    with pytest.raises(StructuredOutputInvalid) as caught:
        engine.parse(reply(CLEAN.replace("31", '"old"')), "native")
    assert "age: Input should be a valid integer" in caught.value.errors


def test_deep_nesting_is_a_validation_error() -> None:
    text = '{"value": ' + "[" * 10_000 + "]" * 10_000 + "}"
    with pytest.raises(StructuredOutputInvalid, match="nesting deeper than 64"):
        StructureEngine(Tree).parse(reply(text), "prompted")


def test_huge_number_is_a_validation_error() -> None:
    with pytest.raises(StructuredOutputInvalid, match="number"):
        engine.parse(reply(CLEAN.replace("31", "9" * 5000)), "native")


def test_infinite_float_is_a_validation_error() -> None:
    with pytest.raises(StructuredOutputInvalid, match="out of range"):
        engine.parse(reply(CLEAN.replace("9.5", "1e999")), "native")


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("NaN", "unexpected 'N'"),
        ("Infinity", "unexpected 'I'"),
        ("-Infinity", "malformed number"),
        ("1E+999", "out of range"),
    ],
)
def test_non_finite_numbers_are_validation_errors(number: str, problem: str) -> None:
    with pytest.raises(StructuredOutputInvalid, match=problem):
        engine.parse(reply(CLEAN.replace("9.5", number)), "native")


def test_request_for_the_tool_strategy_equals_the_prepared_request() -> None:
    other = ToolDefinition(name="search")
    messages = [Message.user("Who?")]
    for tools in ([], [other], [other, engine.output_tool()]):
        built = engine.request(messages, tools, "tool")
        assert built == engine.prepare(ModelRequest(messages=messages, tools=tools), "tool")
        assert built.messages is not messages


def test_huge_reply_is_a_validation_error() -> None:
    text = CLEAN.replace('"Ann"', '"' + "x" * 2_000_000 + '"')
    with pytest.raises(StructuredOutputInvalid, match="longer than"):
        engine.parse(reply(text), "native")


def test_empty_reply_is_a_validation_error() -> None:
    with pytest.raises(StructuredOutputInvalid, match="no output"):
        engine.parse(reply(""), "native")


def test_reask_carries_the_validation_errors() -> None:
    with pytest.raises(StructuredOutputInvalid) as caught:
        engine.parse(reply('{"name": "Ann"}'), "native")
    message = engine.reask_message(caught.value, "native")
    assert (message.role, "age: Field required" in message.text) == (Role.USER, True)


def test_tool_reask_answers_the_output_call() -> None:
    response = tool_calls_reply(ToolCall(id="out-1", name=OUTPUT_TOOL_NAME, arguments="{}"))
    with pytest.raises(StructuredOutputInvalid) as caught:
        engine.parse(response, "tool")
    message = engine.reask_message(caught.value, "tool")
    assert (message.role, message.tool_call_id) == (Role.TOOL, "out-1")


async def test_run_returns_parsed_output() -> None:
    model = ScriptedModel([CLEAN], capabilities=ModelCapabilities(tools=False, json_schema=True))
    assert await engine.run(model, [Message.user("who?")]) == ANN


async def test_run_reasks_with_errors_then_succeeds() -> None:
    model = ScriptedModel(['{"name": "Ann"}', CLEAN], capabilities=ModelCapabilities(tools=False, json_schema=True))
    await engine.run(model, [Message.user("who?")])
    assert "age: Field required" in model.requests[1].messages[-1].text


async def test_run_falls_back_to_the_next_strategy() -> None:
    model = ScriptedModel(["nope", "nope", CLEAN], capabilities=ModelCapabilities(tools=False, json_schema=True))
    await StructureEngine(Person, max_retries=1).run(model, [Message.user("who?")])
    assert model.requests[2].response_format is None


async def test_run_raises_after_bounded_reasks() -> None:
    model = ScriptedModel(["nope"], cycle=True, capabilities=ModelCapabilities(tools=True, json_schema=True))
    with pytest.raises(StructuredOutputInvalid):
        await StructureEngine(Person, max_retries=1).run(model, [Message.user("who?")])
    assert len(model.requests) == 6


async def test_run_answers_every_tool_call_before_reasking() -> None:
    bad = tool_calls_reply(("search", "{}"), ToolCall(id="out-1", name=OUTPUT_TOOL_NAME, arguments="{}"))
    good = tool_calls_reply((OUTPUT_TOOL_NAME, CLEAN))
    model = ScriptedModel([bad, good], capabilities=ModelCapabilities(tools=True))
    await StructureEngine(Person, strategy="tool").run(model, [Message.user("who?")])
    answered = {m.tool_call_id for m in model.requests[1].messages if m.role == Role.TOOL}
    assert answered == {call.id for call in bad.message.tool_calls}


# --- strictness and ambiguity ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("score", "true"), ("score", '"0.9"'), ("age", '"31"'), ("age", "31.0"), ("age", "true"), ("active", "1")],
)
def test_types_are_never_coerced_by_default(field: str, value: str) -> None:
    data = json.loads(CLEAN)
    text = CLEAN.replace(f'"{field}": {json.dumps(data[field])}', f'"{field}": {value}')
    assert text != CLEAN
    with pytest.raises(StructuredOutputInvalid, match=field):
        engine.parse(reply(text), "native")


def test_lax_coercion_is_an_explicit_opt_in() -> None:
    text = CLEAN.replace('"score": 9.5', '"score": "9.5"').replace('"age": 31', '"age": "31"')
    assert StructureEngine(Person, lax=True).parse(reply(text), "native") == ANN


def test_repaired_replies_are_validated_strictly_too() -> None:
    text = "Here: {'name': 'Ann', 'age': '31', 'email': 'a@b.c', 'score': 9.5, 'active': True}"
    with pytest.raises(StructuredOutputInvalid, match="age"):
        engine.parse(reply(text), "prompted")


@pytest.mark.parametrize(
    "text",
    [
        CLEAN.replace('"age": 31', '"age": 31, "age": 32'),
        CLEAN.replace('"age": 31', '"age": 31, "age": 31'),
        "Sure: " + CLEAN.replace('"age": 31', '"age": 31, "age": 32'),
        CLEAN.replace("'", "").replace('"age": 31', "'age': 31, 'age': 32"),
        CLEAN.replace('"age": 31', '"age": 31, "\\u0061ge": 32'),
    ],
)
def test_a_repeated_key_is_ambiguous(text: str) -> None:
    with pytest.raises(StructuredOutputInvalid, match="twice"):
        engine.parse(reply(text), "native")


@pytest.mark.parametrize(
    "text",
    [
        CLEAN + CLEAN,
        f"{CLEAN}\n{CLEAN}",
        f"First {CLEAN} or rather {CLEAN.replace('Ann', 'Bob')}",
        f"```json\n{CLEAN}\n```\nor\n```json\n{CLEAN}\n```",
        f"[1] {CLEAN}",
    ],
)
def test_two_json_values_in_one_reply_are_ambiguous(text: str) -> None:
    with pytest.raises(StructuredOutputInvalid, match="more than one JSON value"):
        engine.parse(reply(text), "prompted")


def test_two_output_tool_calls_are_ambiguous() -> None:
    response = tool_calls_reply((OUTPUT_TOOL_NAME, CLEAN), (OUTPUT_TOOL_NAME, CLEAN.replace("Ann", "Bob")))
    with pytest.raises(StructuredOutputInvalid, match="exactly once"):
        engine.parse(response, "tool")


def test_json_object_asks_for_json_mode_and_carries_the_schema_as_instructions() -> None:
    request = engine.prepare(ModelRequest(messages=[Message.user("hi")]), "json_object")
    assert request.response_format is not None
    assert (request.response_format.type, request.response_format.json_schema) == ("json_object", engine.schema)
    assert '"age"' in request.messages[-1].text


# --- endpoints that refuse a strategy --------------------------------------------------------


def refusing(*features: str) -> FunctionModel:
    """A model whose endpoint refuses the named request features and answers CLEAN otherwise."""

    def respond(request: ModelRequest) -> str:
        shape = request.response_format.type if request.response_format is not None else None
        used = {
            "json_schema": shape == "json_schema",
            "json_object": shape == "json_object",
            "tools": bool(request.tools),
        }
        for feature in features:
            if used.get(feature):
                raise UnsupportedRequestError(f"the endpoint does not accept {feature}", feature=feature)
        return CLEAN

    return FunctionModel(respond, capabilities=ModelCapabilities(tools=True, json_schema=True))


def _shapes(model: FunctionModel) -> list[str]:
    return [
        r.response_format.type if r.response_format else ("tool" if r.tools else "prompted") for r in model.requests
    ]


async def test_a_refused_json_schema_falls_back_to_json_mode() -> None:
    model = refusing("json_schema")
    assert await engine.run(model, [Message.user("who?")]) == ANN
    assert _shapes(model) == ["json_schema", "json_object"]


async def test_fallback_skips_every_strategy_needing_a_refused_feature() -> None:
    model = refusing("json_schema", "json_object", "tools")
    assert await engine.run(model, [Message.user("who?")]) == ANN
    assert _shapes(model) == ["json_schema", "json_object", "tool", "prompted"]


async def test_a_forced_strategy_is_not_replaced_when_refused() -> None:
    with pytest.raises(UnsupportedRequestError):
        await StructureEngine(Person, strategy="native").run(refusing("json_schema"), [Message.user("who?")])


async def test_a_plain_bad_request_is_not_mistaken_for_a_refused_feature() -> None:
    def respond(request: ModelRequest) -> str:
        raise ModelBadRequestError("the model name is wrong")

    model = FunctionModel(respond, capabilities=ModelCapabilities(tools=True, json_schema=True))
    with pytest.raises(ModelBadRequestError, match="model name"):
        await engine.run(model, [Message.user("who?")])
    assert len(model.requests) == 1


async def test_refusal_of_the_last_strategy_is_raised() -> None:
    def respond(request: ModelRequest) -> str:
        raise UnsupportedRequestError("no system messages here", feature="system_messages")

    model = FunctionModel(respond, capabilities=ModelCapabilities(tools=False, json_schema=False))
    with pytest.raises(UnsupportedRequestError, match="system messages"):
        await engine.run(model, [Message.user("who?")])


# --- property tests ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**50), max_value=10**50)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
containers = st.one_of(st.lists(json_values, max_size=4), st.dictionaries(st.text(max_size=8), json_values, max_size=4))
prose = st.text(alphabet=st.characters(blacklist_characters="{}[]`\"'", blacklist_categories=("Cs",)), max_size=40)
people = st.builds(
    Person,
    name=st.text(max_size=30),
    age=st.integers(min_value=-(10**12), max_value=10**12),
    email=st.text(max_size=30),
    score=st.floats(allow_nan=False, allow_infinity=False),
    active=st.booleans(),
)


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_lenient_parser_raises_only_typed_errors(text: str) -> None:
    with contextlib.suppress(StructuredOutputError):
        parse_json_lenient(text)


@given(json_values)
def test_lenient_parser_round_trips_valid_json(value: object) -> None:
    assert parse_json_lenient(json.dumps(value)) == value


@given(containers, prose, prose)
def test_lenient_parser_finds_json_inside_prose(value: object, before: str, after: str) -> None:
    assert parse_json_lenient(f"{before} {json.dumps(value)} {after}") == value


@given(containers, prose)
@example([{"```": None}], "")  # three backticks inside a string do not close the fence
def test_lenient_parser_finds_fenced_json(value: object, before: str) -> None:
    assert parse_json_lenient(f"{before}\n```json\n{json.dumps(value, indent=2)}\n```\nDone.") == value


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_parse_raises_only_structured_output_errors(text: str) -> None:
    with contextlib.suppress(StructuredOutputError):
        engine.parse(reply(text), "prompted")


@given(people)
def test_parse_round_trips_model_json(person: Person) -> None:
    assert engine.parse(reply(person.model_dump_json()), "native") == person


@given(people, prose, prose)
def test_parse_accepts_fenced_or_prosed_model_json(person: Person, before: str, after: str) -> None:
    fenced = f"{before}\n```json\n{person.model_dump_json()}\n```\n{after}"
    prosed = f"{before} {person.model_dump_json()} {after}"
    assert (engine.parse(reply(fenced), "prompted"), engine.parse(reply(prosed), "prompted")) == (person, person)
