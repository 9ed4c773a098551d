"""The `Message` constructors build exactly what `Message(...)` builds: same fields, same fields set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gecko.types import Message, Role, TextPart, ToolCall


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (Message.system("rules"), Message(role=Role.SYSTEM, content="rules")),
        (Message.user("hi"), Message(role=Role.USER, content="hi")),
        (Message.user([TextPart(text="hi")]), Message(role=Role.USER, content=[TextPart(text="hi")])),
        (Message.assistant(), Message(role=Role.ASSISTANT, content=None, tool_calls=[])),
        (
            Message.assistant(None, [ToolCall(id="c1", name="add", arguments="{}")]),
            Message(role=Role.ASSISTANT, content=None, tool_calls=[ToolCall(id="c1", name="add", arguments="{}")]),
        ),
        (
            Message.tool("c1", "5", name="add"),
            Message(role=Role.TOOL, content="5", tool_call_id="c1", name="add"),
        ),
    ],
)
def test_constructor_matches_the_model_call(built: Message, expected: Message) -> None:
    assert type(built) is Message
    assert built == expected
    assert built.model_fields_set == expected.model_fields_set


def test_constructors_still_validate() -> None:
    with pytest.raises(ValidationError):
        Message.user(42)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Message.tool("c1", ["not", "parts"])  # type: ignore[arg-type]
