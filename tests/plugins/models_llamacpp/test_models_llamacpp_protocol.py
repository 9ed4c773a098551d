"""The reply protocol: schemas a grammar can hold, and tool-protocol replies read back."""

from __future__ import annotations

import json

import pytest
from gecko_models_llamacpp._protocol import inline_refs, plan_request, read_reply
from pydantic import BaseModel

from gecko.errors import ModelBadRequestError
from gecko.plugins.models import ModelRequest, ResponseFormat, ToolDefinition
from gecko.types import ImagePart, Message, TextPart, ToolCall


class Address(BaseModel):
    street: str


class Person(BaseModel):
    name: str
    home: Address
    work: Address


class Node(BaseModel):
    children: list[Node]


def test_local_refs_are_inlined() -> None:
    schema = inline_refs(Person.model_json_schema())
    assert "$defs" not in json.dumps(schema)
    assert schema["properties"]["work"]["properties"]["street"]["type"] == "string"


def test_recursive_schema_is_refused() -> None:
    with pytest.raises(ModelBadRequestError, match="recursive"):
        inline_refs(Node.model_json_schema())


def test_remote_ref_is_refused() -> None:
    with pytest.raises(ModelBadRequestError, match="not local"):
        inline_refs({"$ref": "https://example.org/schema.json"})


def test_auto_tool_choice_allows_a_call_or_an_answer() -> None:
    tool = ToolDefinition(name="lookup", parameters={"type": "object", "properties": {"q": {"type": "string"}}})
    plan = plan_request(ModelRequest(messages=[Message.user("hi")], tools=[tool]))
    assert plan.tool_mode
    assert plan.schema is not None
    keys = [set(alternative["properties"]) for alternative in plan.schema["oneOf"]]
    assert keys == [{"tool", "arguments"}, {"answer"}]


def test_tool_choice_none_leaves_the_reply_free() -> None:
    tool = ToolDefinition(name="lookup")
    plan = plan_request(ModelRequest(messages=[Message.user("hi")], tools=[tool], tool_choice="none"))
    assert (plan.tool_mode, plan.schema) == (False, None)


def test_history_renders_calls_and_results_as_text() -> None:
    call = ToolCall(id="c1", name="lookup", arguments='{"q": "x"}')
    messages = [Message.user("hi"), Message.assistant(None, [call]), Message.tool("c1", "found", name="lookup")]
    rendered = plan_request(ModelRequest(messages=messages)).messages
    assert json.loads(rendered[1]["content"]) == {"tool": "lookup", "arguments": {"q": "x"}}
    assert rendered[2] == {"role": "user", "content": "Result of the tool lookup: found"}


def test_image_input_is_refused() -> None:
    message = Message.user([TextPart(text="look"), ImagePart(url="data:image/png;base64,AAAA")])
    with pytest.raises(ModelBadRequestError, match="text only"):
        plan_request(ModelRequest(messages=[message]))


def test_output_schema_is_the_answer_when_tools_are_offered() -> None:
    tool = ToolDefinition(name="lookup")
    request = ModelRequest(
        messages=[Message.user("hi")],
        tools=[tool],
        response_format=ResponseFormat(type="grammar", json_schema=Address.model_json_schema()),
    )
    plan = plan_request(request)
    assert plan.schema is not None
    assert plan.schema["oneOf"][1]["properties"]["answer"]["properties"] == {
        "street": {"title": "Street", "type": "string"}
    }


def test_tool_reply_becomes_a_tool_call() -> None:
    text, calls, finish = read_reply('{"tool": "lookup", "arguments": {"q": "x"}}', "stop")
    assert (text, finish) == ("", "tool_calls")
    assert (calls[0].name, json.loads(calls[0].arguments)) == ("lookup", {"q": "x"})


def test_structured_answer_comes_back_as_json_text() -> None:
    assert read_reply('{"answer": {"street": "Main"}}', "stop") == ('{"street": "Main"}', [], "stop")


def test_truncated_reply_is_returned_raw_with_length() -> None:
    assert read_reply('{"tool": "loo', "length") == ('{"tool": "loo', [], "length")
