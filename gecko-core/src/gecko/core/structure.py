"""Structured output: get a pydantic model out of a chat model, whatever the model can do.

Strategies, best first when chosen from capabilities ("auto"):
- "grammar": `response_format` of type "grammar" carrying the JSON schema (local constrained decoders);
- "native": `response_format` of type "json_schema" (provider-enforced JSON schema);
- "json_object": `response_format` of type "json_object" (any JSON; the schema is also carried,
  for servers that constrain with it) plus the schema as instructions; used when an endpoint
  refuses "native";
- "tool": an output tool `final_result` whose parameters are the schema, with a required tool choice;
- "prompted": the schema and instructions appended as a system message (works with any model).

When the endpoint refuses a strategy's request shape (`UnsupportedRequestError`), "auto" moves
on to the next strategy that does not need the refused feature ("json_object" first after a
refused "native").

Parsing is strict: the reply must validate without type coercion (`true` is not 1.0 and `"0.9"`
is not 0.9), one JSON value with each key once; anything else is re-asked with the reason.
`lax=True` lets pydantic coerce types. Before validation the reader repairs what weak models
write around their JSON (code fences, prose, trailing commas, single quotes, Python literals)
but never completes truncated replies, and its depth, size and number bounds make hostile
replies validation errors.

`StructuredRun` is the one loop over strategies and re-asks: `StructureEngine.run` and the
agent engine both drive it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from gecko.core._json_repair import JSONRepairError, loads_lenient, screen_strict
from gecko.core._sanitize import shorten
from gecko.errors import (
    ConfigurationError,
    ModelBadRequestError,
    StructuredOutputError,
    StructuredOutputInvalid,
    UnsupportedRequestError,
)
from gecko.plugins.models import (
    ChatModel,
    ModelCapabilities,
    ModelRequest,
    ModelResponse,
    ResponseFormat,
    ToolDefinition,
)
from gecko.redaction import redacting_logger
from gecko.types import JSONValue, Message, ToolCall

__all__ = ("OUTPUT_TOOL_NAME", "Strategy", "StructureEngine", "StructuredRun", "parse_json_lenient")

logger = redacting_logger("gecko.structure")

T = TypeVar("T", bound=BaseModel)

Strategy = Literal["grammar", "native", "json_object", "tool", "prompted"]
OUTPUT_TOOL_NAME = "final_result"

_STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
# The request feature each strategy relies on, as `UnsupportedRequestError.feature` names it.
_FEATURES: dict[Strategy, str] = {
    "grammar": "grammar",
    "native": "json_schema",
    "json_object": "json_object",
    "tool": "tools",
}
# What to try first when an endpoint refuses a strategy's request shape: servers that claim the
# OpenAI protocol but refuse JSON schemas often accept plain JSON mode.
_FALLBACKS: dict[Strategy, Strategy] = {"native": "json_object"}
_MAX_REPORTED_ERRORS = 10


def parse_json_lenient(text: str, *, max_depth: int = 64, max_chars: int = 1_000_000) -> JSONValue:
    """The one complete JSON value in `text`, tolerating fences, prose, trailing commas, single quotes
    and Python literals.

    Raises:
        StructuredOutputInvalid: No complete value within the bounds (depth, size, number length),
            or an ambiguous text (a repeated key, two values).
    """
    try:
        return loads_lenient(text, max_depth=max_depth, max_chars=max_chars)
    except JSONRepairError as exc:
        errors = _repair_error_text(exc)
        raise StructuredOutputInvalid(errors, errors=errors) from None


def _repair_error_text(exc: JSONRepairError) -> str:
    if exc.ambiguous:
        return f"The reply is ambiguous: {exc}. Send exactly one JSON object, with each key once."
    cut_off = " It was cut off; send the complete JSON." if exc.truncated else ""
    return f"The reply is not valid JSON: {exc}.{cut_off}"


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
        strategy: Literal["auto", "grammar", "native", "json_object", "tool", "prompted"] = "auto",
        max_retries: int = 2,
        lax: bool = False,
        max_depth: int = 64,
        max_chars: int = 1_000_000,
    ) -> None:
        """Configure the engine.

        Args:
            output_type: The pydantic model the reply must validate as.
            strategy: "auto" chooses from the model's capabilities; a name forces that strategy only.
            max_retries: Re-asks per strategy after the first failed reply.
            lax: Let pydantic coerce types (`"0.9"` to 0.9, `true` to 1.0); strict validation when False.
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
        self.lax = lax
        self.max_depth = max_depth
        self.max_chars = max_chars
        self.schema: dict[str, Any] = output_type.model_json_schema()
        self.name = re.sub(r"[^A-Za-z0-9_-]", "_", output_type.__name__)[:64] or "output"
        self._schema_text = json.dumps(self.schema, separators=(",", ":"))
        self._strict_schema = _is_strict_schema(self.schema)
        # None keeps the output type's own `strict` setting when coercion is allowed.
        self._strict_validation: bool | None = None if lax else True
        # Held here: each read of a model class's validator passes through its metaclass's `__getattr__`.
        ModelRequest.model_rebuild()
        self._new_request = ModelRequest.__pydantic_validator__.validate_python
        # Built once: every request of the "tool" strategy offers this same (frozen) definition.
        self._output_tool = ToolDefinition(
            name=OUTPUT_TOOL_NAME,
            description=f"Return the final answer as a {output_type.__name__}. Call it exactly once.",
            parameters=self.schema,
        )

    @property
    def type_name(self) -> str:
        """The output type's class name."""
        return self.output_type.__name__

    def strategies(self, capabilities: ModelCapabilities) -> list[Strategy]:
        """The strategies to try, in order: the forced one, or grammar > native > tool > prompted as supported.

        "json_object" is never chosen up front: it stands in for "native" on an endpoint that refuses
        JSON schemas (see `StructuredRun.rejected`).
        """
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

    def start(self, capabilities: ModelCapabilities, messages: list[Message]) -> StructuredRun[T]:
        """A `StructuredRun` over `messages` (extended in place) with the strategies for `capabilities`."""
        strategy = self.strategy
        return StructuredRun(self, self.strategies(capabilities) if strategy == "auto" else [strategy], messages)

    def output_tool(self) -> ToolDefinition:
        """The `final_result` tool of the "tool" strategy."""
        return self._output_tool

    def is_output_call(self, message: Message, strategy: Strategy) -> bool:
        """Whether `message` answers through the output tool (strategy "tool"), not with tools to run."""
        if strategy == "tool":
            for call in message.tool_calls:
                if call.name == OUTPUT_TOOL_NAME:
                    return True
        return False

    def prepare(self, request: ModelRequest, strategy: Strategy) -> ModelRequest:
        """A copy of `request` set up for `strategy`; `request` itself is not changed."""
        if strategy == "native":
            response_format = ResponseFormat(
                type="json_schema", name=self.name, json_schema=self.schema, strict=self._strict_schema
            )
            return request.model_copy(update={"response_format": response_format})
        if strategy == "grammar":
            response_format = ResponseFormat(type="grammar", name=self.name, json_schema=self.schema)
            return request.model_copy(update={"response_format": response_format})
        if strategy == "json_object":
            response_format = ResponseFormat(type="json_object", name=self.name, json_schema=self.schema, strict=False)
            messages = [*request.messages, self._instructions()]
            return request.model_copy(update={"response_format": response_format, "messages": messages})
        if strategy == "tool":
            tools = [item for item in request.tools if item.name != OUTPUT_TOOL_NAME] + [self.output_tool()]
            # With other tools present the model must stay free to call them first.
            choice = "required" if len(tools) == 1 else request.tool_choice
            return request.model_copy(update={"tools": tools, "tool_choice": choice})
        if strategy == "prompted":
            return request.model_copy(update={"messages": [*request.messages, self._instructions()]})
        raise ConfigurationError(f"unknown strategy {strategy!r}; use one of {', '.join(_STRATEGIES)}")

    def request(self, messages: list[Message], tools: list[ToolDefinition], strategy: Strategy) -> ModelRequest:
        """A new request for `strategy` over `messages` offering `tools`.

        The same request as `prepare(ModelRequest(messages=messages, tools=tools), strategy)`; the
        "tool" strategy builds it in one step.
        """
        if strategy != "tool":
            return self.prepare(ModelRequest(messages=messages, tools=tools), strategy)
        offered = [item for item in tools if item.name != OUTPUT_TOOL_NAME] if tools else []
        offered.append(self._output_tool)
        # `ModelRequest(...)` without `__init__`'s overhead: the same validator call.
        request: ModelRequest = self._new_request(
            {"messages": messages, "tools": offered, "tool_choice": "required" if len(offered) == 1 else "auto"}
        )
        return request

    def _instructions(self) -> Message:
        return Message.system(
            "Answer with only a JSON object that validates against this JSON schema, "
            f"with no other text:\n{self._schema_text}"
        )

    def parse(self, response: ModelResponse, strategy: Strategy) -> T:
        """The reply as `output_type`.

        Raises:
            StructuredOutputInvalid: The reply is truncated, missing, not JSON, ambiguous (a repeated
                key, two values), too big or too deep, or fails validation; `.errors` says what to fix.
        """
        tool_call_id: str | None = None
        text: str | None = None
        if strategy == "tool":
            output_calls: list[ToolCall] = []
            for call in response.message.tool_calls:
                if call.name == OUTPUT_TOOL_NAME:
                    output_calls.append(call)
            if len(output_calls) > 1:
                raise self._invalid(
                    f"The reply calls {OUTPUT_TOOL_NAME} {len(output_calls)} times; call it exactly once.",
                    strategy,
                    None,
                )
            if output_calls:
                tool_call_id, text = output_calls[0].id, output_calls[0].arguments
        if text is None:
            # Weak models sometimes answer in text even when offered the output tool.
            text = response.message.text
        if response.finish_reason == "length":
            raise self._invalid(
                "The reply was cut off by the output length limit. Answer again with shorter, complete JSON.",
                strategy,
                tool_call_id,
            )
        if not text or text.isspace():
            wanted = f"call the {OUTPUT_TOOL_NAME!r} tool" if strategy == "tool" else "answer with a JSON object"
            raise self._invalid(f"The reply holds no output. Please {wanted} matching the schema.", strategy, None)
        # Whether jiter may read `text` (it turns `1e999` into inf and keeps the last of repeated keys),
        # and the first repeated key; what it may not read goes to the bounded lenient reader.
        if len(text) > self.max_chars or text.count("{") + text.count("[") > self.max_depth:
            fast, repeated = False, None
        else:
            fast, repeated = screen_strict(text)
        if fast:
            try:
                # `model_validate_json` without its Python-level keyword checks: the same validator call.
                value: T = self.output_type.__pydantic_validator__.validate_json(text, strict=self._strict_validation)
            except ValidationError as exc:
                if any(error["type"] != "json_invalid" for error in exc.errors(include_url=False)):
                    raise self._invalid(_format_errors(exc), strategy, tool_call_id) from None
            else:
                if repeated is not None:
                    raise self._invalid(
                        f"The reply is ambiguous: the key {repeated!r} appears twice in one object. "
                        "Send each key once.",
                        strategy,
                        tool_call_id,
                    )
                return value
        return self._parse_repaired(text, strategy, tool_call_id)

    def _parse_repaired(self, text: str, strategy: Strategy, tool_call_id: str | None) -> T:
        try:
            value = loads_lenient(text, max_depth=self.max_depth, max_chars=self.max_chars)
        except JSONRepairError as exc:
            raise self._invalid(_repair_error_text(exc), strategy, tool_call_id) from None
        try:
            # Back through JSON so repaired replies validate exactly like clean ones.
            return self.output_type.model_validate_json(json.dumps(value), strict=self._strict_validation)
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

    def followup(self, message: Message, error: StructuredOutputError, strategy: Strategy) -> list[Message]:
        """What follows a failed reply `message`: an answer to each of its other tool calls, then the re-ask."""
        reask = self.reask_message(error, strategy)
        answers = [
            Message.tool(call.id, f"Not run: call {OUTPUT_TOOL_NAME} with the final result.", name=call.name)
            for call in message.tool_calls
            if call.id != reask.tool_call_id
        ]
        return [*answers, reask]

    async def run(self, model: ChatModel, messages: Sequence[Message]) -> T:
        """Ask `model` for an `output_type`: each strategy in turn, each with up to `max_retries` re-asks.

        Raises:
            StructuredOutputInvalid: No strategy produced valid output; `.errors` holds the last problems.
            UnsupportedRequestError: The endpoint refused the last strategy's request shape.
        """
        attempt = self.start(model.capabilities, list(messages))
        while True:
            request = attempt.request(attempt.messages, [])
            try:
                response = await model.complete(request)
            except ModelBadRequestError as exc:
                attempt.rejected(exc)
                continue
            value = attempt.answer(response)
            if value is not None:
                return value


class StructuredRun(Generic[T]):
    """One structured answer being obtained: the strategy in use, its re-asks and the fallbacks.

    It extends the conversation it is given: a failed reply is followed by its re-ask; when a
    strategy's re-asks are spent its failed replies are removed, and the next strategy starts
    from the conversation as it was before them. The caller sends requests made by `prepare`
    and hands each final reply to `answer` (or a refused request to `rejected`).
    """

    __slots__ = ("_attempt_start", "_index", "_retries", "_strategies", "engine", "messages", "strategy")

    def __init__(self, engine: StructureEngine[T], strategies: list[Strategy], messages: list[Message]) -> None:
        self.engine = engine
        self.messages = messages
        self._strategies = strategies  # owned: `StructureEngine.start` passes a new list
        self._index = 0
        self._retries = 0
        self._attempt_start: int | None = None
        self.strategy: Strategy = self._strategies[0]
        """The strategy of the next request."""

    def prepare(self, request: ModelRequest) -> ModelRequest:
        """`request` set up for the current strategy."""
        return self.engine.prepare(request, self.strategy)

    def request(self, messages: list[Message], tools: list[ToolDefinition]) -> ModelRequest:
        """A new request over `messages` offering `tools`, set up for the current strategy."""
        return self.engine.request(messages, tools, self.strategy)

    def is_output_call(self, message: Message) -> bool:
        """Whether `message` answers through the output tool rather than asking for tools to run."""
        return self.engine.is_output_call(message, self.strategy)

    def rejected(self, error: ModelBadRequestError) -> None:
        """The endpoint refused the current strategy's request: move to the next strategy that can work.

        Raises:
            ModelBadRequestError: `error` itself, when it is not an `UnsupportedRequestError`, the
                strategy was forced, or no remaining strategy avoids the refused feature.
        """
        if self.engine.strategy != "auto" or not isinstance(error, UnsupportedRequestError):
            raise error
        current = self.strategy
        later = [item for item in self._strategies[self._index + 1 :] if _FEATURES.get(item) != error.feature]
        fallback = _FALLBACKS.get(current)
        if fallback is not None and _FEATURES[fallback] != error.feature and fallback not in later:
            later.insert(0, fallback)
        if not later:
            raise error
        logger.debug(
            "%s: the endpoint refused the %s strategy (feature %r); trying %s",
            self.engine.type_name,
            current,
            error.feature,
            later[0],
        )
        self._strategies[self._index + 1 :] = later
        self._next_strategy()

    def answer(self, response: ModelResponse) -> T | None:
        """Take a final reply: its parsed value, or None after adding a re-ask (or moving to the next strategy).

        The reply is added to the conversation; on success every tool call it holds is answered,
        so the saved conversation stays valid for a later run.

        Raises:
            StructuredOutputInvalid: Every strategy's re-asks are spent.
        """
        message = response.message
        self.messages.append(message)
        engine, strategy = self.engine, self.strategy
        try:
            value = engine.parse(response, strategy)
        except StructuredOutputInvalid as exc:
            if self._attempt_start is None:
                self._attempt_start = len(self.messages) - 1
            if self._retries < engine.max_retries:
                self._retries += 1
                self.messages.extend(engine.followup(message, exc, strategy))
                return None
            if self._index + 1 >= len(self._strategies):
                raise StructuredOutputInvalid(
                    f"no valid {engine.type_name} after trying {', '.join(self._strategies)} with "
                    f"{engine.max_retries} re-asks each; last problems:\n{exc.errors}\nSimplify the output type "
                    "or use a model with JSON-schema support",
                    errors=exc.errors,
                    strategy=strategy,
                ) from exc
            self._next_strategy()
            return None
        for call in message.tool_calls:
            answer = (
                "Final result received."
                if call.name == OUTPUT_TOOL_NAME
                else "Not run: the final result was already given."
            )
            self.messages.append(Message.tool(call.id, answer, name=call.name))
        return value

    def _next_strategy(self) -> None:
        if self._attempt_start is not None:
            del self.messages[self._attempt_start :]
            self._attempt_start = None
        self._index += 1
        self._retries = 0
        self.strategy = self._strategies[self._index]
