"""Structured output: get a pydantic model out of a chat model, whatever the model can do.

Strategies, best first when chosen from capabilities ("auto"):
- "grammar": `response_format` of type "grammar" carrying the JSON schema (local constrained decoders);
- "native": `response_format` of type "json_schema" (provider-enforced JSON schema);
- "tool": an output tool `final_result` whose parameters are the schema, with a required tool choice;
- "prompted": the schema and instructions appended as a system message (works with any model).

Parsing tries the exact JSON first (`model_validate_json`, microseconds) and only on failure
repairs what weak models write: code fences, prose, trailing commas, single quotes, Python
literals. Truncated replies are never accepted; depth, size and number bounds make hostile
replies validation errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from gecko.core._json_repair import JSONRepairError, loads_lenient
from gecko.core._sanitize import shorten
from gecko.errors import ConfigurationError, ModelBadRequestError, StructuredOutputError, StructuredOutputInvalid
from gecko.plugins.models import (
    ChatModel,
    ModelCapabilities,
    ModelRequest,
    ModelResponse,
    ResponseFormat,
    ToolDefinition,
)
from gecko.types import JSONValue, Message

__all__ = ("OUTPUT_TOOL_NAME", "Strategy", "StructureEngine", "parse_json_lenient")

T = TypeVar("T", bound=BaseModel)

Strategy = Literal["native", "tool", "grammar", "prompted"]
OUTPUT_TOOL_NAME = "final_result"

_STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
# Things the fast path must not accept: non-finite or very long numbers (jiter turns `1e999`
# into inf). A match only sends the reply to the bounded lenient reader, which decides.
_SUSPICIOUS_NUMBER = re.compile(r"[0-9][eE][+-]?[0-9]{3}|[0-9]{300}|NaN|Infinity")
_MAX_REPORTED_ERRORS = 10


def parse_json_lenient(text: str, *, max_depth: int = 64, max_chars: int = 1_000_000) -> JSONValue:
    """The first complete JSON value in `text`, tolerating fences, prose, trailing commas, single quotes
    and Python literals.

    Raises:
        StructuredOutputInvalid: No complete value within the bounds (depth, size, number length).
    """
    try:
        return loads_lenient(text, max_depth=max_depth, max_chars=max_chars)
    except JSONRepairError as exc:
        errors = f"The reply is not valid JSON: {exc}." + (" It was cut off." if exc.truncated else "")
        raise StructuredOutputInvalid(errors, errors=errors) from None


def _format_errors(exc: ValidationError) -> str:
    lines: list[str] = []
    errors = exc.errors(include_url=False, include_context=False)
    for error in errors[:_MAX_REPORTED_ERRORS]:
        location = ".".join(str(item) for item in error["loc"]) or "(root)"
        message = error["msg"]
        if error["type"] != "missing" and "input" in error:
            message += f" (got {shorten(repr(error['input']), 60)})"
        lines.append(f"- {location}: {message}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        lines.append(f"- ... and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "\n".join(lines)


def _is_strict_schema(schema: Any) -> bool:
    """Whether providers' strict JSON-schema mode accepts `schema` (closed objects, all keys required)."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            if schema.get("additionalProperties") is not False or set(schema.get("required", ())) != set(properties):
                return False
        return all(_is_strict_schema(value) for value in schema.values())
    if isinstance(schema, list):
        return all(_is_strict_schema(item) for item in schema)
    return True


class StructureEngine(Generic[T]):
    """Prepares requests for, parses and re-asks structured output of type `output_type`."""

    def __init__(
        self,
        output_type: type[T],
        *,
        strategy: Literal["auto", "native", "tool", "grammar", "prompted"] = "auto",
        max_retries: int = 2,
        max_depth: int = 64,
        max_chars: int = 1_000_000,
    ) -> None:
        """Configure the engine.

        Args:
            output_type: The pydantic model the reply must validate as.
            strategy: "auto" chooses from the model's capabilities; a name forces that strategy only.
            max_retries: Re-asks per strategy after the first failed reply (used by `run`).
            max_depth: Deepest JSON nesting accepted.
            max_chars: Longest reply accepted, in characters.
        """
        if not (isinstance(output_type, type) and issubclass(output_type, BaseModel)):
            raise ConfigurationError(f"output_type must be a pydantic BaseModel subclass, got {output_type!r}")
        if strategy != "auto" and strategy not in _STRATEGIES:
            raise ConfigurationError(f"strategy must be 'auto' or one of {', '.join(_STRATEGIES)}; got {strategy!r}")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}")
        self.output_type = output_type
        self.strategy = strategy
        self.max_retries = max_retries
        self.max_depth = max_depth
        self.max_chars = max_chars
        self.schema: dict[str, Any] = output_type.model_json_schema()
        self.name = re.sub(r"[^A-Za-z0-9_-]", "_", output_type.__name__)[:64] or "output"
        self._schema_text = json.dumps(self.schema, separators=(",", ":"))
        self._strict = _is_strict_schema(self.schema)

    @property
    def type_name(self) -> str:
        """The output type's class name."""
        return self.output_type.__name__

    def strategies(self, capabilities: ModelCapabilities) -> list[Strategy]:
        """The strategies to try, in order: the forced one, or grammar > native > tool > prompted as supported."""
        if self.strategy != "auto":
            return [self.strategy]
        order: list[Strategy] = []
        if capabilities.grammar:
            order.append("grammar")
        if capabilities.json_schema:
            order.append("native")
        if capabilities.tools:
            order.append("tool")
        order.append("prompted")
        return order

    def output_tool(self) -> ToolDefinition:
        """The `final_result` tool of the "tool" strategy."""
        return ToolDefinition(
            name=OUTPUT_TOOL_NAME,
            description=f"Return the final answer as a {self.output_type.__name__}. Call it exactly once.",
            parameters=self.schema,
        )

    def is_output_call(self, message: Message, strategy: Strategy) -> bool:
        """Whether `message` answers through the output tool (strategy "tool"), not with tools to run."""
        return strategy == "tool" and any(call.name == OUTPUT_TOOL_NAME for call in message.tool_calls)

    def prepare(self, request: ModelRequest, strategy: Strategy) -> ModelRequest:
        """A copy of `request` set up for `strategy`; `request` itself is not changed."""
        if strategy == "native":
            response_format = ResponseFormat(
                type="json_schema", name=self.name, json_schema=self.schema, strict=self._strict
            )
            return request.model_copy(update={"response_format": response_format})
        if strategy == "grammar":
            response_format = ResponseFormat(type="grammar", name=self.name, json_schema=self.schema)
            return request.model_copy(update={"response_format": response_format})
        if strategy == "tool":
            tools = [item for item in request.tools if item.name != OUTPUT_TOOL_NAME] + [self.output_tool()]
            # With other tools present the model must stay free to call them first.
            choice = "required" if len(tools) == 1 else request.tool_choice
            return request.model_copy(update={"tools": tools, "tool_choice": choice})
        if strategy == "prompted":
            instructions = Message.system(
                "Answer with only a JSON object that validates against this JSON schema, "
                f"with no other text:\n{self._schema_text}"
            )
            return request.model_copy(update={"messages": [*request.messages, instructions]})
        raise ConfigurationError(f"unknown strategy {strategy!r}; use one of {', '.join(_STRATEGIES)}")

    def parse(self, response: ModelResponse, strategy: Strategy) -> T:
        """The reply as `output_type`.

        Raises:
            StructuredOutputInvalid: The reply is truncated, missing, not JSON, too big or too deep,
                or fails validation; `.errors` says what to fix.
        """
        tool_call_id: str | None = None
        text: str | None = None
        if strategy == "tool":
            for call in response.message.tool_calls:
                if call.name == OUTPUT_TOOL_NAME:
                    tool_call_id, text = call.id, call.arguments
                    break
        if text is None:
            # Weak models sometimes answer in text even when offered the output tool.
            text = response.message.text
        if response.finish_reason == "length":
            raise self._invalid(
                "The reply was cut off by the output length limit. Answer again with shorter, complete JSON.",
                strategy,
                tool_call_id,
            )
        if not text.strip():
            wanted = f"call the {OUTPUT_TOOL_NAME!r} tool" if strategy == "tool" else "answer with a JSON object"
            raise self._invalid(f"The reply holds no output. Please {wanted} matching the schema.", strategy, None)
        if (
            len(text) <= self.max_chars
            and text.count("{") + text.count("[") <= self.max_depth
            and _SUSPICIOUS_NUMBER.search(text) is None
        ):
            try:
                return self.output_type.model_validate_json(text)
            except ValidationError as exc:
                if any(error["type"] != "json_invalid" for error in exc.errors(include_url=False)):
                    raise self._invalid(_format_errors(exc), strategy, tool_call_id) from None
        return self._parse_repaired(text, strategy, tool_call_id)

    def _parse_repaired(self, text: str, strategy: Strategy, tool_call_id: str | None) -> T:
        try:
            value = loads_lenient(text, max_depth=self.max_depth, max_chars=self.max_chars)
        except JSONRepairError as exc:
            detail = " It was cut off; send the complete JSON." if exc.truncated else ""
            raise self._invalid(f"The reply is not valid JSON: {exc}.{detail}", strategy, tool_call_id) from None
        try:
            # Back through JSON so repaired replies validate exactly like clean ones.
            return self.output_type.model_validate_json(json.dumps(value))
        except ValidationError as exc:
            raise self._invalid(_format_errors(exc), strategy, tool_call_id) from None

    def _invalid(self, errors: str, strategy: Strategy, tool_call_id: str | None) -> StructuredOutputInvalid:
        return StructuredOutputInvalid(
            f"output is not a valid {self.output_type.__name__} ({strategy} strategy):\n{errors}",
            errors=errors,
            strategy=strategy,
            tool_call_id=tool_call_id,
        )

    def reask_message(self, error: StructuredOutputError, strategy: Strategy) -> Message:
        """The message asking the model to fix its reply, carrying the validation errors.

        For the "tool" strategy with a known output call this is the tool result answering it.
        """
        errors = error.errors if isinstance(error, StructuredOutputInvalid) else str(error)
        if strategy == "tool":
            text = (
                f"Invalid {OUTPUT_TOOL_NAME} arguments:\n{errors}\nCall {OUTPUT_TOOL_NAME} again with fixed arguments."
            )
            tool_call_id = error.tool_call_id if isinstance(error, StructuredOutputInvalid) else None
            if tool_call_id is not None:
                return Message.tool(tool_call_id, text, name=OUTPUT_TOOL_NAME)
            return Message.user(text)
        return Message.user(
            f"Your reply did not match the required JSON schema:\n{errors}\n"
            "Reply again with only the corrected JSON object."
        )

    def _followup(self, response: ModelResponse, error: StructuredOutputError, strategy: Strategy) -> list[Message]:
        """The assistant reply and the re-ask, with every tool call of the reply answered."""
        reask = self.reask_message(error, strategy)
        messages = [response.message]
        for call in response.message.tool_calls:
            if call.id != reask.tool_call_id:
                messages.append(
                    Message.tool(call.id, f"Tool {call.name!r} is not available; call {OUTPUT_TOOL_NAME}.", call.name)
                )
        messages.append(reask)
        return messages

    async def run(self, model: ChatModel, messages: Sequence[Message]) -> T:
        """Ask `model` for an `output_type`: each strategy in turn, each with up to `max_retries` re-asks.

        Raises:
            StructuredOutputInvalid: No strategy produced valid output; `.errors` holds the last problems.
        """
        tried: list[str] = []
        last_errors = "no strategy was tried"
        for strategy in self.strategies(model.capabilities):
            tried.append(strategy)
            request = self.prepare(ModelRequest(messages=list(messages)), strategy)
            for _ in range(self.max_retries + 1):
                try:
                    response = await model.complete(request)
                except ModelBadRequestError as exc:
                    # The provider rejects this strategy's request shape: the next strategy may work.
                    last_errors = f"the model rejected the {strategy} request: {shorten(str(exc), 200)}"
                    break
                try:
                    return self.parse(response, strategy)
                except StructuredOutputError as exc:
                    last_errors = exc.errors if isinstance(exc, StructuredOutputInvalid) else str(exc)
                    followup = self._followup(response, exc, strategy)
                    request = request.model_copy(update={"messages": [*request.messages, *followup]})
        raise StructuredOutputInvalid(
            f"no valid {self.output_type.__name__} after strategies {', '.join(tried)} "
            f"with {self.max_retries} re-asks each; last problems:\n{last_errors}",
            errors=last_errors,
        )
