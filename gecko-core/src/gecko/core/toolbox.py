"""Tools the model may call: `@tool`, strict argument validation and bounded concurrent execution.

A tool's JSON schema comes from its type hints and its Google-style docstring. Arguments are
validated by a pydantic model generated once per tool, in strict mode with unknown keys
forbidden, so `"5"` or `true` never silently become `5`, and a key sent twice is refused as
ambiguous. Failures go back to the model as short, redacted messages; only the run's own
cancellation escapes `execute` (a tool raising a cancellation exception of its own is a failed
tool). Results longer than `max_result_chars` are cut, with a marker saying so, so one call
cannot flood the context or a saved session; a lone surrogate in a result reads as U+FFFD.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload, runtime_checkable

import anyio

from gecko._checks import positive_seconds
from gecko.core._json_repair import repeated_key
from gecko.core._sanitize import safe_error_text, shorten, valid_text
from gecko.errors import (
    ConfigurationError,
    GeckoError,
    ToolArgumentsError,
    ToolExecutionError,
    ToolTimeoutError,
    UnknownToolError,
)

if TYPE_CHECKING:
    # pydantic loads when the first tool is built, asyncio when a run is cancelled, so
    # `from gecko import tool` stays light.
    from pydantic import BaseModel, ValidationError

    from gecko.plugins.models import ToolDefinition
    from gecko.types import Message, ToolCall

__all__ = (
    "DEFAULT_MAX_RESULT_CHARS",
    "DEFAULT_MAX_TOOL_CALLS_PER_TURN",
    "Tool",
    "ToolBox",
    "ToolResult",
    "ToolSource",
    "tool",
)

DEFAULT_MAX_RESULT_CHARS = 50_000
"""Characters of one tool result the model reads (about 12 000 tokens of English)."""

DEFAULT_MAX_TOOL_CALLS_PER_TURN = 16
"""Tool calls one reply may ask for before the whole batch is refused."""

_F = TypeVar("_F", bound=Callable[..., Any])

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECTION_PATTERN = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Returns|Return|Yields|Raises|"
    r"Examples?|Notes?|Attributes|See Also|Warnings?|Todo):\s*$"
)
_ARG_PATTERN = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
# A JSON number reaches float64's limit (~1.8e308) only with an exponent of three digits or more, or
# with a run of over 200 digits; NaN and Infinity are spelled out. Where none is written, every number
# in the arguments is finite.
_MAY_BE_NON_FINITE = re.compile(r"[eE]\+?\d{3}|\d{100}|NaN|Infinity")
_NON_FINITE_PROBLEM = "a number is NaN, Infinity or past float64's range. Send finite numbers."
_MAX_REPORTED_ERRORS = 8


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {parameter: description})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        header = _SECTION_PATTERN.match(stripped) if not line.startswith((" ", "\t")) else None
        if header:
            section = header.group(1)
            current, arg_indent = None, None
            continue
        if section is None:
            description.append(line)
            continue
        if section not in ("Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments"):
            continue
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if arg_indent is None:
            arg_indent = indent
        match = _ARG_PATTERN.match(stripped)
        if indent <= arg_indent and match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    return "\n".join(description).strip(), params


def _strip_titles(schema: Any) -> Any:
    """The schema without pydantic's generated `title` keys, which only repeat names to the model."""
    if isinstance(schema, dict):
        cleaned: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "title" and isinstance(value, str):
                continue
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                cleaned[key] = {name: _strip_titles(sub) for name, sub in value.items()}
            else:
                cleaned[key] = _strip_titles(value)
        return cleaned
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def _format_validation_errors(exc: ValidationError) -> str:
    """Concise `field: problem (got ...)` lines for the model, at most a few of them."""
    parts: list[str] = []
    errors = exc.errors(include_url=False, include_context=False)
    for error in errors[:_MAX_REPORTED_ERRORS]:
        location = ".".join(str(item) for item in error["loc"]) or "(arguments)"
        message = error["msg"]
        if error["type"] not in ("missing", "json_invalid") and "input" in error:
            message += f" (got {shorten(repr(error['input']), 40)})"
        parts.append(f"{location}: {message}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"... and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)


def _to_content(value: Any) -> str:
    """A tool's return value as the text the model reads: strings as is, everything else as JSON.

    Raises:
        RecursionError, ValueError, ...: The value cannot be written (nested too deep, say).
    """
    if isinstance(value, str):
        return value
    from pydantic_core import PydanticSerializationError, to_json

    try:
        return to_json(value).decode()
    except PydanticSerializationError:
        return str(value)


def _decoded(arguments: str) -> Any:
    """`arguments` decoded as strict JSON (no NaN or Infinity; text holding a lone surrogate is a ValueError)."""
    from pydantic_core import from_json

    # as UTF-8 bytes: `from_json` raises a TypeError for text holding a lone surrogate
    return from_json(arguments.encode(), allow_inf_nan=False)


def _holds_non_finite_text(arguments: str) -> bool:
    """Whether JSON `arguments` (which a lax parser accepted) hold NaN, Infinity or a number past float64's range."""
    try:
        return _holds_non_finite(_decoded(arguments))
    except ValueError:  # the strict parser refuses NaN and Infinity
        return True


def _holds_non_finite(value: Any) -> bool:
    """Whether decoded JSON `value` holds a float that is not finite (what `1e400` reads as)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _cap(content: str, limit: int) -> str:
    """`content` cut to `limit` characters with a marker naming both sizes, or as is when it fits."""
    if len(content) <= limit:
        return content
    return content[:limit] + f"\n[tool result truncated: showing the first {limit} of {len(content)} characters]"


def _is_cancellation(exc: BaseException) -> bool:
    """Whether `exc` is a cancellation exception: the backend's, or asyncio's raised on any backend."""
    import asyncio  # already loaded on the asyncio backend; only a cancelled tool gets here

    return isinstance(exc, (anyio.get_cancelled_exc_class(), asyncio.CancelledError))


def _is_run_cancellation(exc: BaseException) -> bool:
    """Whether `exc` cancels the running task, rather than being raised by a tool's own code.

    On asyncio a real cancellation is a pending cancel request on the task; a `CancelledError`
    raised without one (or an asyncio `CancelledError` on trio) came from the tool.
    """
    import asyncio

    cancelled = anyio.get_cancelled_exc_class()
    if not isinstance(exc, cancelled):
        return False
    if cancelled is asyncio.CancelledError:
        task = asyncio.current_task()
        # `Task.cancelling` is new in Python 3.11; before it every cancellation counts as the run's.
        cancelling: Callable[[], int] | None = getattr(task, "cancelling", None)
        return cancelling is None or cancelling() > 0
    return True


class Tool:
    """A function the model may call, with its JSON schema and a cached strict validator.

    Build it with `@tool`; calling the `Tool` still calls the function.
    """

    __slots__ = (
        "__wrapped__",
        "_arguments_model",
        "_definition",
        "_fields",
        "_validate_object",
        "description",
        "function",
        "is_async",
        "name",
        "parameters",
        "requires_approval",
        "timeout",
    )

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        requires_approval: bool = False,
    ) -> None:
        """Describe `function` as a tool.

        Args:
            function: A sync or async function whose parameters all have JSON-compatible types.
            name: The name the model calls; defaults to the function's name.
            description: What the tool does; defaults to the docstring's text before its sections.
            timeout: Seconds the tool may run; `None` uses the toolbox's default.
            requires_approval: Whether a run must pause for approval before this tool executes.

        Raises:
            ConfigurationError: The name is not `[A-Za-z0-9_-]{1,64}`, a parameter is `*args`/`**kwargs`,
                the timeout is not positive, or a type hint cannot be turned into a schema.
        """
        doc_description, param_docs = _parse_docstring(inspect.getdoc(function))
        self._describe(function, name, description if description is not None else doc_description)
        self._configure(timeout, requires_approval)
        arguments_model, self._fields = self._build_model(function, param_docs)
        self._arguments_model: type[BaseModel] | None = arguments_model
        self._validate_object: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        schema = _strip_titles(arguments_model.model_json_schema(by_alias=True))
        schema.setdefault("properties", {})
        self.parameters: dict[str, Any] = schema
        from gecko.plugins.models import ToolDefinition

        self._definition = ToolDefinition(name=self.name, description=self.description, parameters=schema)

    @classmethod
    def from_schema(
        cls,
        function: Callable[..., Awaitable[Any]],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        validate: Callable[[dict[str, Any]], dict[str, Any]],
        timeout: float | None = None,
        requires_approval: bool = False,
    ) -> Tool:
        """A tool described by a JSON schema rather than type hints (a tool served remotely, say).

        Args:
            function: An async function called with the validated arguments as keywords.
            name: The name the model calls.
            description: What the tool does, shown to the model.
            parameters: The JSON schema of the arguments object, shown to the model as is.
            validate: Checks the decoded arguments object and returns the keywords; raises
                `ToolArgumentsError` when they do not match `parameters`.
            timeout: Seconds the tool may run; `None` uses the toolbox's default.
            requires_approval: Whether a run must pause for approval before this tool executes.

        Raises:
            ConfigurationError: The name is not `[A-Za-z0-9_-]{1,64}` or the timeout is not positive.
        """
        from gecko.plugins.models import ToolDefinition

        item = cls.__new__(cls)
        item._describe(function, name, description)
        item._configure(timeout, requires_approval)
        item._arguments_model, item._fields = None, ()
        item._validate_object = validate
        item.parameters = parameters
        item._definition = ToolDefinition(name=name, description=description, parameters=parameters)
        return item

    def _describe(self, function: Callable[..., Any], name: str | None, description: str) -> None:
        self.function = function
        self.__wrapped__ = function
        self.name: str = name or str(getattr(function, "__name__", ""))
        if not _NAME_PATTERN.match(self.name):
            raise ConfigurationError(f"tool name {self.name!r} must match [A-Za-z0-9_-]{{1,64}}; pass name=...")
        self.description = description
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)  # noqa: B004 - async callable objects count too
        )

    def _configure(self, timeout: float | None, requires_approval: bool) -> None:
        positive_seconds(timeout, f"tool {self.name!r}: timeout")
        self.timeout = timeout
        self.requires_approval = requires_approval

    def _build_model(
        self, function: Callable[..., Any], param_docs: dict[str, str]
    ) -> tuple[type[BaseModel], tuple[tuple[str, str], ...]]:
        from pydantic import ConfigDict, Field, create_model

        try:
            signature = inspect.signature(function)
            hints = typing.get_type_hints(function, include_extras=True)
        except (TypeError, ValueError, NameError) as exc:
            raise ConfigurationError(f"tool {self.name!r}: cannot read the signature or type hints: {exc}") from exc
        definitions: dict[str, Any] = {}
        fields: list[tuple[str, str]] = []
        for index, (param_name, param) in enumerate(signature.parameters.items()):
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise ConfigurationError(
                    f"tool {self.name!r}: *args and **kwargs cannot be described to a model; name each parameter"
                )
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                raise ConfigurationError(
                    f"tool {self.name!r}: positional-only parameter {param_name!r} cannot be passed by name"
                )
            annotation = hints.get(param_name, Any)
            # Internal field names avoid clashes with BaseModel attributes (`json`, `schema`,
            # `model_*`); the alias is what the model sees and sends.
            field_name = f"p{index}"
            default = ... if param.default is inspect.Parameter.empty else param.default
            definitions[field_name] = (
                annotation,
                Field(default, alias=param_name, description=param_docs.get(param_name) or None),
            )
            fields.append((field_name, param_name))
        config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, defer_build=False)
        try:
            model = create_model(f"{self.name}_arguments", __config__=config, **definitions)
            model.model_json_schema(by_alias=True)
        except Exception as exc:  # pydantic raises several types for unsupported hints
            raise ConfigurationError(f"tool {self.name!r}: its type hints cannot become a JSON schema: {exc}") from exc
        return model, tuple(fields)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, requires_approval={self.requires_approval})"

    def definition(self) -> ToolDefinition:
        """The tool as the model sees it."""
        return self._definition

    def validate_arguments(self, arguments: str) -> dict[str, Any]:
        """Parse and strictly validate raw JSON `arguments` into keyword arguments for the function.

        Raises:
            ToolArgumentsError: The JSON is malformed, too deep, or does not match the schema.
        """
        if not arguments or arguments.isspace():
            arguments = "{}"
        if self._arguments_model is None:
            assert self._validate_object is not None, "a tool has a model or a validator"
            return self._validate_object(self._decode_object(arguments))
        try:
            instance = self._arguments_model.model_validate_json(arguments)
        except ValueError as exc:
            from pydantic import ValidationError

            if not isinstance(exc, ValidationError):
                raise
            raise ToolArgumentsError(
                f"Invalid arguments for tool {self.name!r}: {_format_validation_errors(exc)}. "
                "Fix the arguments to match the tool's schema and call it again."
            ) from None
        if repeated_key(arguments) is not None:
            raise ToolArgumentsError(
                f"Invalid arguments for tool {self.name!r}: a key appears twice, so the call is ambiguous. "
                "Send each argument once."
            )
        if _MAY_BE_NON_FINITE.search(arguments) is not None and _holds_non_finite_text(arguments):
            # a parameter typed `float` refuses these itself; `dict`, `Any` or a model of the user's take them
            raise ToolArgumentsError(f"Invalid arguments for tool {self.name!r}: {_NON_FINITE_PROBLEM}")
        values = instance.__dict__
        return {param: values[field] for field, param in self._fields}

    def _decode_object(self, arguments: str) -> dict[str, Any]:
        """`arguments` as a JSON object with no repeated key, for a schema-described tool.

        The object is one any JSON writer can send on as it is (to a tool server, say): strict JSON
        (no NaN or Infinity, no lone surrogate, at most 200 levels deep) with every number finite.
        """
        try:
            decoded = _decoded(arguments)
        except ValueError as exc:  # UnicodeEncodeError included
            problem = f"the arguments are not valid JSON ({shorten(str(exc), 120)}). Send one JSON object."
        else:
            if not isinstance(decoded, dict):
                problem = f"expected a JSON object of arguments, got {type(decoded).__name__}."
            elif _holds_non_finite(decoded):
                problem = _NON_FINITE_PROBLEM
            elif repeated_key(arguments) is not None:
                problem = "a key appears twice, so the call is ambiguous. Send each argument once."
            else:
                return decoded
        raise ToolArgumentsError(f"Invalid arguments for tool {self.name!r}: {problem}")


@overload
def tool(
    function: _F,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    requires_approval: bool = False,
) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    requires_approval: bool = False,
) -> Callable[[_F], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    requires_approval: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a sync or async function into a `Tool`: `@tool`, `@tool(timeout=5)` or `tool(fn, name=...)`.

    Example:
        ```python
        @tool(timeout=5)
        async def add(a: int, b: int) -> int:
            '''Add two integers.

            Args:
                a: The first addend.
                b: The second addend.
            '''
            return a + b
        ```
    """
    if function is not None:
        return Tool(function, name=name, description=description, timeout=timeout, requires_approval=requires_approval)

    def decorate(func: Callable[..., Any]) -> Tool:
        return Tool(func, name=name, description=description, timeout=timeout, requires_approval=requires_approval)

    return decorate


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call: `content` is what the model reads; `error` is set on failure."""

    call: ToolCall
    content: str
    is_error: bool = False
    error: GeckoError | None = None

    def to_message(self) -> Message:
        """The tool-role message answering the call."""
        from gecko.types import Message

        return Message.tool(self.call.id, self.content, name=self.call.name)


@runtime_checkable
class ToolSource(Protocol):
    """Tools behind a connection (an MCP server, say), opened before a run needs them.

    A `ToolBox` holding sources opens each once, at its first `open()`, adds the tools the
    source returns, and closes the sources in `aclose()`.
    """

    async def open(self) -> Sequence[Tool]:
        """Connect and return the tools; called once until `aclose`."""
        ...

    async def aclose(self) -> None:
        """Disconnect; the source may be opened again afterwards."""
        ...


class ToolBox:
    """The tools of one agent: validation, per-tool timeouts and bounded parallel execution."""

    def __init__(
        self,
        tools: Iterable[Tool | ToolSource | Callable[..., Any]] = (),
        *,
        max_parallel: int = 8,
        max_argument_bytes: int = 65536,
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
        default_timeout: float | None = 60.0,
    ) -> None:
        """Hold `tools`.

        Args:
            tools: `Tool`s, plain functions (wrapped with `tool`), or `ToolSource`s whose tools
                join at `open()`.
            max_parallel: At most this many calls of one `execute_many` run at once.
            max_argument_bytes: Raw argument JSON larger than this is rejected before parsing.
            max_result_chars: A result longer than this is cut to it, with a truncation marker.
            default_timeout: Seconds a tool without its own timeout may run; `None` means no limit.
        """
        if max_parallel < 1:
            raise ConfigurationError(f"max_parallel must be at least 1, got {max_parallel}")
        if max_argument_bytes < 2:
            raise ConfigurationError(f"max_argument_bytes must be at least 2, got {max_argument_bytes}")
        if max_result_chars < 1:
            raise ConfigurationError(f"max_result_chars must be at least 1, got {max_result_chars}")
        positive_seconds(default_timeout, "default_timeout")
        self.max_parallel = max_parallel
        self.max_argument_bytes = max_argument_bytes
        self.max_result_chars = max_result_chars
        self.default_timeout = default_timeout
        self._tools: dict[str, Tool] = {}
        self._definitions: list[ToolDefinition] | None = None
        self.generation = 0
        """Grows by one whenever a tool is added or removed."""
        self._sources: list[ToolSource] = []
        self._opened: dict[int, tuple[str, ...]] = {}  # id(source) -> names of the tools it added
        self._open_lock: anyio.Lock | None = None
        for item in tools:
            if isinstance(item, ToolSource):
                self._sources.append(item)
            else:
                self.add(item)

    @property
    def sources(self) -> tuple[ToolSource, ...]:
        """The tool sources, opened or not."""
        return tuple(self._sources)

    def needs_open(self) -> bool:
        """Whether a source is not open yet (`open()` has something to do)."""
        return len(self._opened) != len(self._sources)

    async def open(self) -> None:
        """Open every source not yet open and add its tools; nothing to do without sources.

        Raises:
            ConfigurationError: A source's tool has the name of a tool already here (the source
                is closed again).
        """
        if not self.needs_open():
            return
        if self._open_lock is None:
            self._open_lock = anyio.Lock()
        async with self._open_lock:
            for source in self._sources:
                if id(source) in self._opened:
                    continue
                tools = await source.open()
                names = [item.name for item in tools]
                clashes = sorted({name for name in names if name in self._tools or names.count(name) > 1})
                if clashes:
                    with anyio.CancelScope(shield=True):
                        await source.aclose()
                    raise ConfigurationError(
                        f"tools {', '.join(clashes)} of {source!r} clash with other tools of the toolbox; "
                        "give the source a prefix"
                    )
                for item in tools:
                    self.add(item)
                self._opened[id(source)] = tuple(names)

    async def aclose(self) -> None:
        """Close the open sources and remove their tools; plain tools stay."""
        for source in reversed(self._sources):
            names = self._opened.pop(id(source), None)
            if names is None:
                continue
            for name in names:
                self._tools.pop(name, None)
            self._definitions = None
            self.generation += 1
            await source.aclose()

    def add(self, tool_or_function: Tool | Callable[..., Any]) -> Tool:
        """Register a tool (a plain function is wrapped with `tool`) and return it.

        Raises:
            ConfigurationError: Another tool already has this name.
        """
        item = tool_or_function if isinstance(tool_or_function, Tool) else Tool(tool_or_function)
        if item.name in self._tools:
            raise ConfigurationError(f"a tool named {item.name!r} is already registered; give one of them name=...")
        self._tools[item.name] = item
        self._definitions = None
        self.generation += 1
        return item

    @property
    def names(self) -> tuple[str, ...]:
        """The registered tool names, in registration order."""
        return tuple(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool:
        """The tool called `name`.

        Raises:
            UnknownToolError: No such tool; the message lists the valid names.
        """
        found = self._tools.get(name)
        if found is None:
            valid = ", ".join(self._tools) or "(none: answer without tools)"
            raise UnknownToolError(
                f"Unknown tool {shorten(repr(name), 80)}. Valid tools: {valid}. Call one of these by its exact name."
            )
        return found

    def definitions(self) -> list[ToolDefinition]:
        """The definitions of every tool, for `ModelRequest.tools`."""
        if self._definitions is None:
            self._definitions = [item.definition() for item in self._tools.values()]
        return list(self._definitions)

    def validate(self, call: ToolCall) -> dict[str, Any]:
        """Check a call before anything runs and return the function's keyword arguments.

        Raises:
            UnknownToolError: The tool is not registered.
            ToolArgumentsError: The arguments are too large, malformed, or invalid for the schema.
        """
        found = self.get(call.name)
        arguments = call.arguments
        # A character is at most 4 UTF-8 bytes, so the exact byte count is only needed near the cap.
        if len(arguments) * 4 > self.max_argument_bytes:
            size = len(arguments.encode("utf-8", "surrogatepass"))
            if size > self.max_argument_bytes:
                raise ToolArgumentsError(
                    f"Arguments for tool {found.name!r} are {size} bytes; the limit is {self.max_argument_bytes}. "
                    "Send smaller arguments."
                )
        return found.validate_arguments(arguments)

    async def execute(self, call: ToolCall) -> ToolResult:
        """Validate and run one call; every failure except cancellation becomes an error `ToolResult`."""
        try:
            arguments = self.validate(call)
        except (UnknownToolError, ToolArgumentsError) as exc:
            return ToolResult(call, f"Error: {exc}", is_error=True, error=exc)
        return await self._run(self._tools[call.name], call, arguments)

    async def execute_validated(self, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
        """Run a call whose `arguments` are what `validate(call)` returned, without validating again.

        Raises:
            UnknownToolError: The tool is not registered (a validated call always is).
        """
        return await self._run(self.get(call.name), call, arguments)

    async def execute_many(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run `calls` concurrently, at most `max_parallel` at once; results keep the calls' order."""
        if len(calls) <= 1:
            return [await self.execute(call) for call in calls]
        return await self._gather([functools.partial(self.execute, call) for call in calls])

    async def execute_many_validated(
        self,
        calls: Sequence[tuple[ToolCall, dict[str, Any]]],
        *,
        runner: Callable[[ToolCall, dict[str, Any]], Awaitable[ToolResult]] | None = None,
    ) -> list[ToolResult]:
        """`execute_many` for `(call, arguments)` pairs already checked by `validate`.

        Args:
            calls: The calls with the arguments `validate` returned.
            runner: Runs one call instead of `execute_validated` (the agent's observed path:
                middleware, events and hooks around it); `max_parallel` holds for it too.
        """
        run = runner or self.execute_validated
        if len(calls) <= 1:
            return [await run(call, arguments) for call, arguments in calls]
        return await self._gather([functools.partial(run, call, arguments) for call, arguments in calls])

    async def _gather(self, jobs: Sequence[Callable[[], Awaitable[ToolResult]]]) -> list[ToolResult]:
        """The results of `jobs`, run concurrently within `max_parallel`; a runner's failure (a hook's, a
        middleware's: a tool's own is its result) cancels the others and is raised as it is (`run_all`)."""
        from gecko._tasks import run_all  # off the import path of `from gecko import Agent`

        results: list[ToolResult | None] = [None] * len(jobs)
        # One limiter per batch: it belongs to the running event loop, and the toolbox may be
        # shared by runs on different loops.
        limiter = anyio.CapacityLimiter(self.max_parallel)

        async def run_one(index: int, job: Callable[[], Awaitable[ToolResult]]) -> None:
            async with limiter:
                results[index] = await job()

        await run_all([functools.partial(run_one, index, job) for index, job in enumerate(jobs)])
        return [result for result in results if result is not None]

    async def _run(self, found: Tool, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
        timeout = found.timeout if found.timeout is not None else self.default_timeout
        timed_out = False
        try:
            if timeout is None:
                value = await self._invoke(found, arguments)
            else:
                # A bare deadline scope (what `fail_after` wraps) is cheaper on this hot path.
                with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
                    value = await self._invoke(found, arguments)
                timed_out = scope.cancelled_caught
        except Exception as exc:
            return self._failure(found, call, exc)
        except BaseException as exc:
            if not _is_cancellation(exc) or _is_run_cancellation(exc):
                raise
            # The tool's own exception may have replaced a real cancellation (trio's cannot be
            # told apart by type): let a pending one through before reporting the failure.
            from anyio.lowlevel import checkpoint_if_cancelled

            await checkpoint_if_cancelled()
            return self._failure(found, call, exc)
        if timed_out:
            timeout_error = ToolTimeoutError(
                f"Tool {found.name!r} did not finish within {timeout:g} s. Try simpler arguments or another way."
            )
            return ToolResult(call, f"Error: {timeout_error}", is_error=True, error=timeout_error)
        try:
            content = _to_content(value)
        except Exception as exc:  # RecursionError for deep nesting, or whatever `str` of the value raises
            error = ToolExecutionError(
                f"Tool {found.name!r} returned a value that cannot be sent to the model "
                f"({type(exc).__name__}: nested too deeply or not serializable); return plain, flatter data."
            )
            error.__cause__ = exc
            return ToolResult(call, f"Error: {error}", is_error=True, error=error)
        return ToolResult(call, valid_text(_cap(content, self.max_result_chars)))

    @staticmethod
    async def _invoke(found: Tool, arguments: dict[str, Any]) -> Any:
        if found.is_async:
            return await typing.cast(Awaitable[Any], found.function(**arguments))
        from anyio.to_thread import run_sync

        # A timed-out sync tool cannot be interrupted; its thread is abandoned and finishes alone.
        return await run_sync(functools.partial(found.function, **arguments), abandon_on_cancel=True)

    @staticmethod
    def _failure(found: Tool, call: ToolCall, exc: BaseException) -> ToolResult:
        error = ToolExecutionError(f"Tool {found.name!r} failed: {valid_text(safe_error_text(exc))}")
        error.__cause__ = exc
        return ToolResult(call, f"Error: {error}", is_error=True, error=error)
