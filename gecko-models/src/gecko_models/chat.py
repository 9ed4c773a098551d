"""`LiteLLMChat`: any litellm model string as a Gecko `ChatModel`."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import anyio
from pydantic import SecretStr

from gecko.errors import (
    ConfigurationError,
    ModelBadRequestError,
    ModelOutputError,
    ModelServerError,
    UnsupportedRequestError,
)
from gecko.plugins.models import (
    ChatModel,
    ModelCapabilities,
    ModelChunk,
    ModelConfig,
    ModelRequest,
    ModelResponse,
    ResponseFormat,
    RetryPolicy,
    ToolCallDelta,
)
from gecko.redaction import redact_url
from gecko.types import Message, TokenUsage, ToolCall
from gecko_models import _features, _litellm

__all__ = ("LiteLLMChat",)

logger = logging.getLogger("gecko_models")

T = TypeVar("T")


class LiteLLMChat(ChatModel):
    """A chat model reached through litellm, e.g. `LiteLLMChat("openai/gpt-4o-mini")`.

    litellm's own retries are switched off; `retry` is the only retry layer. Streaming always
    asks the provider for usage, so `TokenUsage` is the provider's count, streamed or not.

    When the endpoint rejects a feature of a request (a `json_schema` or `json_object` response
    format, `tools`, `tool_choice`), the call raises `UnsupportedRequestError` naming it, and the
    rejection is remembered for this endpoint and model until the process ends: later requests
    using the feature are refused before sending, and `capabilities` no longer declares it, so
    structured output picks another strategy at once. A rejected `json_schema` response format is
    first asked again as `{"type": "json_object", "schema": ...}`, the form llama.cpp's servers and
    several hosted APIs enforce; only when that is rejected too does the call fail.

    Args:
        model: the model name; for `LiteLLMChat` a full litellm string such as `"groq/llama3-8b"`.
        api_key: the provider key; by default the provider's usual environment variable.
        api_base: the endpoint, for proxies and OpenAI-compatible servers.
        temperature: sampling temperature; None leaves the provider default.
        timeout: seconds for one request.
        max_retries: retries after the first attempt, when `retry` is not given.
        retry: the full retry policy (attempts, backoff, total time).
        capabilities: what the model supports; requests needing more are refused before sending.
        config: a `ModelConfig` to take all of the above from; explicit arguments win.
        **extra: further litellm / provider parameters sent with every request (`max_tokens`, ...).
    """

    provider: ClassVar[str] = "litellm"
    sends_extra_headers = True  # litellm sends `extra_headers` with the HTTP request
    #: prefix that turns `model` into a litellm model string.
    litellm_prefix: ClassVar[str] = ""
    #: environment variables read, in order, when no api_key is given.
    api_key_env: ClassVar[tuple[str, ...]] = ()
    #: environment variables read, in order, when no api_base is given.
    api_base_env: ClassVar[tuple[str, ...]] = ()
    default_api_base: ClassVar[str | None] = None
    default_model: ClassVar[str] = ""
    default_capabilities: ClassVar[ModelCapabilities] = ModelCapabilities(tools=True, streaming=True)

    def __init__(
        self,
        model: str = "",
        *,
        api_key: str | SecretStr | None = None,
        api_base: str | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        capabilities: ModelCapabilities | None = None,
        config: ModelConfig | None = None,
        **extra: Any,
    ) -> None:
        if config is not None:
            model = model or config.model_name
            api_key = api_key if api_key is not None else config.api_key
            api_base = api_base or config.api_base
            temperature = temperature if temperature is not None else config.temperature
            timeout = timeout if timeout is not None else config.timeout
            max_retries = max_retries if max_retries is not None else config.max_retries
            extra = {**config.extra, **extra}
        self.model = model or self.default_model
        if not self.model:
            raise ConfigurationError(f"{type(self).__name__} needs a model, e.g. model='openai/gpt-4o-mini'")
        self.api_base = api_base or _first_env(self.api_base_env) or self.default_api_base
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._api_key = key or _first_env(self.api_key_env) or self._missing_api_key()
        self.temperature = temperature
        self.timeout = _litellm.checked_timeout(60.0 if timeout is None else timeout)
        self.retry = retry or RetryPolicy(max_attempts=(3 if max_retries is None else max_retries) + 1)
        self.capabilities = capabilities or self.default_capabilities
        self.extra = extra

    @property
    def capabilities(self) -> ModelCapabilities:
        """The declared capabilities, less what this endpoint has rejected in this process."""
        rejected = _features.rejected(self._endpoint)
        declared = self._declared_capabilities
        if not rejected:
            return declared
        return declared.model_copy(
            update={
                "json_schema": declared.json_schema and not {"json_schema", "json_object"} <= rejected,
                "tools": declared.tools and "tools" not in rejected,
            }
        )

    @capabilities.setter
    def capabilities(self, value: ModelCapabilities) -> None:
        self._declared_capabilities = value

    def _missing_api_key(self) -> str | None:
        """The key to use when none is given or found; None lets litellm read its own variables."""
        return None

    @property
    def litellm_model(self) -> str:
        """The model string handed to litellm."""
        if not self.litellm_prefix or self.model.startswith(self.litellm_prefix):
            return self.model
        return self.litellm_prefix + self.model

    @property
    def _endpoint(self) -> _features.Endpoint:
        return (self.api_base or "", self.litellm_model)

    def __repr__(self) -> str:
        api_base = redact_url(self.api_base) if self.api_base else self.api_base
        return f"{type(self).__name__}(model={self.model!r}, api_base={api_base!r})"

    # --- requests --------------------------------------------------------------------

    def _check_capabilities(self, request: ModelRequest) -> None:
        """Refuse what the model is not declared to do; what the endpoint rejected is `_refuse_rejected`'s."""
        declared = self._declared_capabilities
        missing = []
        if request.tools and not declared.tools:
            missing.append("tools")
        if request.response_format is not None:
            if request.response_format.type == "grammar" and not declared.grammar:
                missing.append("grammar")
            if request.response_format.type == "json_schema" and not declared.json_schema:
                missing.append("json_schema")
        if not declared.vision and _litellm.has_images(request):
            missing.append("vision")
        if missing:
            flags = ", ".join(f"{name}=True" for name in missing)
            raise ModelBadRequestError(
                f"{self.model}: the request needs {', '.join(missing)}, which this model does not declare; "
                f"pass capabilities=ModelCapabilities({flags}) if it does support them"
            )

    def _refuse_rejected(self, used: tuple[_features.Feature, ...]) -> None:
        known = _features.rejected(self._endpoint)
        for feature in used:
            if feature in known:
                raise UnsupportedRequestError(
                    f"{self.model}: {_features.display(self.api_base)} rejected {_features.DESCRIPTIONS[feature]} "
                    "in this process, so it is not sent again; ask without it",
                    feature=feature,
                )

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        """The litellm keyword arguments of `request`, all but the per-attempt `timeout`."""
        arguments: dict[str, Any] = {
            "model": self.litellm_model,
            "messages": _litellm.to_wire_messages(request.messages),
            # One retry layer only: ours.
            "num_retries": 0,
            "max_retries": 0,
        }
        if self._api_key is not None:
            arguments["api_key"] = self._api_key
        if self.api_base is not None:
            arguments["api_base"] = self.api_base
        if self.temperature is not None:
            arguments["temperature"] = self.temperature
        if request.tools:
            arguments["tools"] = _litellm.to_wire_tools(request.tools)
            arguments["tool_choice"] = request.tool_choice
        if request.response_format is not None:
            response_format = self._response_format(request.response_format)
            arguments["response_format"] = _litellm.to_wire_response_format(response_format)
        arguments.update(self.extra)
        arguments.update(request.settings)
        return arguments

    def _response_format(self, wanted: ResponseFormat) -> ResponseFormat:
        """`wanted` in a form this endpoint has not rejected, where there is one."""
        rejected = _features.rejected(self._endpoint)
        if wanted.type == "json_schema" and "json_schema" in rejected and "json_object" not in rejected:
            return wanted.model_copy(update={"type": "json_object"})
        return wanted

    def _attempt_timeout(self, remaining: float | None) -> float:
        return self.timeout if remaining is None else max(0.001, min(self.timeout, remaining))

    def _translate(self, exc: Exception, used: tuple[_features.Feature, ...]) -> Exception:
        error = _litellm.translate_error(exc, self.model, timeout=self.timeout, api_base=self.api_base, used=used)
        if isinstance(error, UnsupportedRequestError) and _features.remember(self._endpoint, error.feature):
            logger.debug(
                "%s at %s rejects %s; not sent there again in this process",
                self.model,
                _features.display(self.api_base),
                _features.DESCRIPTIONS[error.feature],
            )
        return error

    def _prepare(self, request: ModelRequest) -> tuple[dict[str, Any], tuple[_features.Feature, ...]]:
        """The request's arguments and the optional features they use, after the checks before sending."""
        self._check_capabilities(request)
        arguments = self._arguments(request)
        used = _features.used_features(arguments)
        self._refuse_rejected(used)
        return arguments, used

    async def _send(
        self, request: ModelRequest, send: Callable[[dict[str, Any], tuple[_features.Feature, ...]], Awaitable[T]]
    ) -> T:
        """`send` the request's arguments; a rejected json_schema response format goes again as json_object."""
        wants_schema = request.response_format is not None and request.response_format.type == "json_schema"
        arguments, used = self._prepare(request)
        try:
            return await send(arguments, used)
        except UnsupportedRequestError as exc:
            if not wants_schema or exc.feature not in ("json_schema", "json_object"):
                raise
            if exc.feature == "json_object":
                raise self._no_json_form(exc) from exc
        try:
            # Remembered now: `_prepare` writes the schema into the json_object form, or refuses.
            arguments, used = self._prepare(request)
            return await send(arguments, used)
        except UnsupportedRequestError as exc:
            if exc.feature not in ("json_schema", "json_object"):
                raise
            raise self._no_json_form(exc) from exc

    def _no_json_form(self, cause: UnsupportedRequestError) -> UnsupportedRequestError:
        return UnsupportedRequestError(
            f"{self.model}: {_features.display(self.api_base)} accepts neither a json_schema response_format "
            f"nor json_object with a schema ({cause}); ask without a response format",
            feature="json_schema",
        )

    # --- ChatModel -------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send `request` and return the whole reply, retrying transient failures.

        Raises:
            ModelOutputError: the reply has no choices, or fields of the wrong shape (a tool call
                whose id is a number, say) that litellm let through.
        """
        raw = await self._send(request, self._complete)
        if not raw.choices:
            raise ModelOutputError(f"{self.model}: the reply holds no choices, so it has no message to read")
        try:
            choice = raw.choices[0]
            message = choice.message
            tool_calls = [
                ToolCall(id=call.id, name=call.function.name or "", arguments=call.function.arguments or "{}")
                for call in (message.tool_calls or [])
            ]
            return ModelResponse(
                message=Message.assistant(message.content or None, tool_calls),
                usage=_litellm.to_usage(getattr(raw, "usage", None)),
                finish_reason=_litellm.to_finish_reason(choice.finish_reason, has_tool_calls=bool(tool_calls)),
                model=self.model,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise _litellm.malformed(self.model, "a reply", exc) from exc

    async def _complete(self, arguments: dict[str, Any], used: tuple[_features.Feature, ...]) -> Any:
        litellm = await _litellm.load_litellm()

        async def attempt(remaining: float | None) -> Any:
            timeout = self._attempt_timeout(remaining)

            async def call() -> Any:
                try:
                    return await litellm.acompletion(**{**arguments, "timeout": timeout})
                except Exception as exc:
                    raise self._translate(exc, used) from exc

            return await _litellm.within(timeout, self.model, "for the whole answer", call)

        return await self.retry.run(attempt)

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Send `request` and yield the reply as it arrives; the last chunk carries usage.

        Retried like `complete` until the first text or tool-call piece arrives, so a stream that
        opens and then fails before saying anything is asked again. A failure after that is raised:
        the consumer already has part of the reply, and a second answer would not continue it.
        """
        return self._stream(request)

    async def _stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        raw_stream, reader, used = await self._send(request, self._open_stream)
        try:
            while True:
                # `timeout` bounds the wait for each piece, so a server trickling bytes or
                # keep-alive comments cannot hold the stream open forever.
                chunk = await _litellm.within(self.timeout, self.model, "between two pieces of the stream", reader.next)
                if chunk is None:
                    break
                yield chunk
        except Exception as exc:
            raise self._translate(exc, used) from exc
        finally:
            # Release the connection even when the consumer stops early or is cancelled.
            await _close(raw_stream)
        yield ModelChunk(
            usage=reader.usage or TokenUsage(requests=1),
            finish_reason=_litellm.to_finish_reason(reader.finish_reason, has_tool_calls=reader.saw_tool_calls),
        )

    async def _open_stream(
        self, arguments: dict[str, Any], used: tuple[_features.Feature, ...]
    ) -> tuple[Any, _StreamReader, tuple[_features.Feature, ...]]:
        arguments = {
            **arguments,
            "stream": True,
            "stream_options": {**arguments.get("stream_options", {}), "include_usage": True},
        }
        litellm = await _litellm.load_litellm()

        async def attempt(remaining: float | None) -> tuple[Any, _StreamReader]:
            timeout = self._attempt_timeout(remaining)

            async def call() -> tuple[Any, _StreamReader]:
                try:
                    raw_stream = await litellm.acompletion(**{**arguments, "timeout": timeout})
                except Exception as exc:
                    raise self._translate(exc, used) from exc
                reader = _StreamReader(raw_stream, self.model)
                try:
                    await reader.read_first()
                except BaseException as exc:
                    await _close(raw_stream)
                    if isinstance(exc, Exception):
                        raise self._translate(exc, used) from exc
                    raise
                return raw_stream, reader

            # Opening the stream and reading its first piece is one request, bounded as in `complete`.
            return await _litellm.within(timeout, self.model, "for the first piece of the stream", call)

        raw_stream, reader = await self.retry.run(attempt)
        return raw_stream, reader, used


class _StreamReader:
    """Turns litellm's raw stream chunks into `ModelChunk`s, keeping usage and the finish reason aside."""

    def __init__(self, raw_stream: Any, label: str) -> None:
        self._raw_stream = raw_stream
        self._iterator = raw_stream.__aiter__()
        self._label = label
        self._first: ModelChunk | None = None
        self.usage: TokenUsage | None = None
        self.finish_reason: str | None = None
        self.saw_tool_calls = False
        self._said_something = False

    async def read_first(self) -> None:
        """Read up to the first chunk with text or tool-call pieces (or the end) and hold it."""
        self._first = await self._read()

    async def next(self) -> ModelChunk | None:
        """The next chunk with text or tool-call pieces; None at the end of the stream."""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._read()

    async def _read(self) -> ModelChunk | None:
        async for raw in self._iterator:
            try:
                chunk = self._chunk(raw)
            except (AttributeError, TypeError, ValueError) as exc:
                raise _litellm.malformed(self._label, "a stream chunk", exc) from exc
            if chunk is not None:
                self._said_something = True
                return chunk
        # A stream that said something and then stopped without a finish reason is litellm's to refuse.
        if not self._said_something and not _provider_finished(self._raw_stream):
            raise ModelServerError(
                f"{self._label}: the stream ended before the reply finished (no finish_reason); "
                "check that the endpoint streams server-sent events"
            )
        return None

    def _chunk(self, raw: Any) -> ModelChunk | None:
        if getattr(raw, "usage", None) is not None:
            self.usage = _litellm.to_usage(raw.usage)
        if not raw.choices:
            return None
        choice = raw.choices[0]
        delta = choice.delta
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        deltas = [
            ToolCallDelta(
                index=call.index or 0,
                id=call.id,
                name=call.function.name if call.function else None,
                arguments=(call.function.arguments or "") if call.function else "",
            )
            for call in (delta.tool_calls or [])
        ]
        self.saw_tool_calls = self.saw_tool_calls or bool(deltas)
        if delta.content or deltas:
            return ModelChunk(text=delta.content or "", tool_calls=deltas)
        return None


def _provider_finished(raw_stream: Any) -> bool:
    """Whether the provider itself sent a finish reason.

    litellm closes a stream that carried no chunk at all (an empty body, JSON instead of
    server-sent events) with a finish reason of its own, so a missing reply would read as an
    empty one; its wrapper records what the provider sent.
    """
    if not hasattr(raw_stream, "received_finish_reason"):
        return True
    return (
        raw_stream.received_finish_reason is not None
        or getattr(raw_stream, "intermittent_finish_reason", None) is not None
        or bool(getattr(raw_stream, "received_any_finish_reason", False))
    )


async def _close(raw_stream: Any) -> None:
    with anyio.move_on_after(2, shield=True):
        await raw_stream.aclose()


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None
