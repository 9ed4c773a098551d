"""What the local model is asked for: the chat messages, the reply schema, and how a reply is read.

Small local models cannot be trusted to call tools in free text, so tool calling is a JSON
protocol enforced by a grammar: the reply is exactly one object, either
`{"tool": <name>, "arguments": <that tool's schema>}` or `{"answer": <text or output schema>}`.
Every reply parses, every call names a real tool with schema-valid arguments; whether the
model picks the right tool is still up to the model.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gecko.errors import ModelBadRequestError
from gecko.plugins.models import FinishReason, ModelRequest, ToolDefinition
from gecko.types import ImagePart, Message, Role, ToolCall

__all__ = ("Plan", "plan_request", "inline_refs", "read_reply")

_MAX_REF_DEPTH = 32


@dataclass(frozen=True)
class Plan:
    """One request made ready for the local model.

    Attributes:
        messages: role/content dicts for the chat template.
        schema: the JSON schema the reply is constrained to, or None for free text.
        tool_mode: the reply follows the tool protocol and is read by `read_reply`.
    """

    messages: list[dict[str, str]]
    schema: dict[str, Any] | None
    tool_mode: bool


def inline_refs(schema: Any) -> Any:
    """`schema` with every local `$ref` (`#/$defs/...`, `#/definitions/...`) replaced by its target.

    Raises:
        ModelBadRequestError: A reference is remote, dangling or recursive (a grammar cannot hold it).
    """
    if not isinstance(schema, dict):
        return schema
    root = schema
    return _inline(schema, root, ())


def _inline(node: Any, root: dict[str, Any], trail: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, root, trail) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in trail or len(trail) >= _MAX_REF_DEPTH:
            raise ModelBadRequestError(f"schema reference {ref!r} is recursive; a local grammar needs a finite schema")
        target = _resolve(ref, root)
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _inline({**target, **siblings}, root, (*trail, ref))
    return {key: _inline(value, root, trail) for key, value in node.items() if key not in ("$defs", "definitions")}


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ModelBadRequestError(f"schema reference {ref!r} is not local; inline it before sending the schema")
    node: Any = root
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            raise ModelBadRequestError(f"schema reference {ref!r} points nowhere in the schema")
        node = node[key]
    if not isinstance(node, dict):
        raise ModelBadRequestError(f"schema reference {ref!r} does not point at a schema object")
    return node


def _tool_alternative(tool: ToolDefinition) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"tool": {"const": tool.name}, "arguments": inline_refs(tool.parameters)},
        "required": ["tool", "arguments"],
        "additionalProperties": False,
    }


def _answer_alternative(answer_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"answer": answer_schema},
        "required": ["answer"],
        "additionalProperties": False,
    }


def _text(message: Message) -> str:
    if isinstance(message.content, list) and any(isinstance(part, ImagePart) for part in message.content):
        raise ModelBadRequestError("this local model reads text only; remove the image parts (capabilities.vision)")
    return message.text


def _render_history(messages: Sequence[Message]) -> list[dict[str, str]]:
    rendered: list[dict[str, str]] = []
    for message in messages:
        if message.role is Role.TOOL:
            label = message.name or message.tool_call_id or "tool"
            rendered.append({"role": "user", "content": f"Result of the tool {label}: {_text(message)}"})
            continue
        content = _text(message)
        if message.tool_calls:
            calls = [
                json.dumps({"tool": call.name, "arguments": _arguments(call.arguments)}, ensure_ascii=False)
                for call in message.tool_calls
            ]
            content = "\n".join([content, *calls]) if content else "\n".join(calls)
        rendered.append({"role": message.role.value, "content": content})
    return rendered


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _with_instructions(messages: list[dict[str, str]], instructions: str) -> list[dict[str, str]]:
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        return [{"role": "system", "content": f"{first['content']}\n\n{instructions}"}, *messages[1:]]
    return [{"role": "system", "content": instructions}, *messages]


def _tool_instructions(tools: Sequence[ToolDefinition], choice: str, answer_schema: Mapping[str, Any]) -> str:
    # Small models copy example values literally, so the protocol is described with names, not placeholders.
    lines = ["You have tools:"]
    for tool in tools:
        description = f": {tool.description}" if tool.description else ""
        lines.append(f"- {tool.name}{description} Arguments: {json.dumps(inline_refs(tool.parameters))}")
    if choice == "auto":
        answer = (
            "text" if answer_schema.get("type") == "string" else f"a JSON value matching {json.dumps(answer_schema)}"
        )
        lines.append(
            'Reply in JSON. Call a tool with {"tool": name, "arguments": {...}}, '
            f'or give your final reply with {{"answer": {answer}}}. Call a tool first when it can help.'
        )
    else:
        lines.append('Reply in JSON and call one of the tools now: {"tool": name, "arguments": {...}}.')
    return "\n".join(lines)


def plan_request(request: ModelRequest) -> Plan:
    """The chat messages and reply constraint for `request`.

    Raises:
        ModelBadRequestError: The request holds images, or a schema a grammar cannot express.
    """
    messages = _render_history(request.messages)
    response_format = request.response_format
    output_schema: dict[str, Any] | None = None
    if response_format is not None:
        if response_format.type == "json_object" or response_format.json_schema is None:
            output_schema = {"type": "object"}
        else:
            output_schema = inline_refs(response_format.json_schema)
    if request.tools and request.tool_choice != "none":
        answer_schema = output_schema if output_schema is not None else {"type": "string"}
        alternatives = [_tool_alternative(tool) for tool in request.tools]
        if request.tool_choice == "auto":
            alternatives.append(_answer_alternative(answer_schema))
        instructions = _tool_instructions(request.tools, request.tool_choice, answer_schema)
        schema = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
        return Plan(messages=_with_instructions(messages, instructions), schema=schema, tool_mode=True)
    if output_schema is not None:
        instructions = f"Answer with only a JSON object matching this JSON schema:\n{json.dumps(output_schema)}"
        return Plan(messages=_with_instructions(messages, instructions), schema=output_schema, tool_mode=False)
    return Plan(messages=messages, schema=None, tool_mode=False)


def read_reply(text: str, finish_reason: FinishReason) -> tuple[str, list[ToolCall], FinishReason]:
    """A tool-protocol reply as `(text, tool_calls, finish_reason)`.

    A reply cut off by the length limit is returned as its raw text with `"length"`, so the
    caller sees the truncation instead of a guessed call.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text, [], finish_reason
    if isinstance(value, dict) and isinstance(value.get("tool"), str):
        call = ToolCall(
            id=f"call_{uuid.uuid4().hex[:16]}",
            name=value["tool"],
            arguments=json.dumps(value.get("arguments", {}), ensure_ascii=False),
        )
        return "", [call], "tool_calls"
    if isinstance(value, dict) and "answer" in value:
        answer = value["answer"]
        return (answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)), [], finish_reason
    return text, [], finish_reason
