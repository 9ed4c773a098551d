"""The bridge to litellm: a lazy offline-safe import, the wire format, and error translation."""

from __future__ import annotations

import email.utils
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any, TypeVar

import anyio

from gecko.errors import (
    ConfigurationError,
    ContextLengthError,
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelConnectionError,
    ModelError,
    ModelOutputError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
    UnsupportedRequestError,
)
from gecko.plugins.models import FinishReason, ModelRequest, ResponseFormat, ToolDefinition
from gecko.redaction import redact, redact_url
from gecko.types import ImagePart, Message, Role, TextPart, TokenUsage
from gecko_models import _features

__all__ = (
    "load_litellm",
    "import_seconds",
    "to_wire_messages",
    "to_wire_tools",
    "to_wire_response_format",
    "to_usage",
    "to_finish_reason",
    "has_images",
    "translate_error",
    "checked_timeout",
    "malformed",
    "within",
)

T = TypeVar("T")

# Set before litellm is imported: without them it fetches its cost map over the network,
# Llama-family token counting stalls trying to download a tokenizer, and (in its default "DEV"
# mode) the import loads a `.env` file from the working directory into os.environ.
_OFFLINE_ENVIRONMENT = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_OFFLINE_MODE": "true",
    "HF_HUB_OFFLINE": "1",
    "LITELLM_MODE": "PRODUCTION",
}

_lock = threading.Lock()
_module: ModuleType | None = None
_import_seconds: float | None = None


def _import_litellm() -> ModuleType:
    global _module, _import_seconds
    with _lock:
        if _module is None:
            for key, value in _OFFLINE_ENVIRONMENT.items():
                os.environ.setdefault(key, value)
            started = time.perf_counter()
            import litellm

            litellm.suppress_debug_info = True
            _import_seconds = time.perf_counter() - started
            _module = litellm
        return _module


async def load_litellm() -> ModuleType:
    """litellm, imported on first use in a worker thread (the import takes seconds)."""
    if _module is not None:
        return _module
    return await anyio.to_thread.run_sync(_import_litellm)


def import_seconds() -> float | None:
    """How long this process's litellm import took; None before the first use."""
    return _import_seconds


# --- requests ----------------------------------------------------------------------


def _wire_content(content: str | list[TextPart | ImagePart] | None) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            parts.append({"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}})
    return parts


def _wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role.value, "content": _wire_content(message.content)}
    if message.role is Role.ASSISTANT and message.tool_calls:
        # Some OpenAI-compatible servers reject `content: null` beside tool calls; "" works everywhere.
        wire["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.role is Role.TOOL:
        wire["tool_call_id"] = message.tool_call_id
    if message.name:
        wire["name"] = message.name
    return wire


def to_wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages in the OpenAI chat format litellm takes."""
    return [_wire_message(message) for message in messages]


def to_wire_tools(tools: list[ToolDefinition]) -> list[dict[str, Any]]:
    """Tool definitions in the OpenAI `tools` format."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def to_wire_response_format(response_format: ResponseFormat) -> dict[str, Any]:
    """A `ResponseFormat` in the OpenAI `response_format` shape."""
    if response_format.type == "json_object":
        # The schema rides along where there is one: llama.cpp's servers and several hosted APIs enforce it.
        if response_format.json_schema is None:
            return {"type": "json_object"}
        return {"type": "json_object", "schema": response_format.json_schema}
    if response_format.type == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {
                "name": response_format.name,
                "schema": response_format.json_schema or {},
                "strict": response_format.strict,
            },
        }
    raise ConfigurationError("litellm models cannot enforce a grammar; use the 'native' or 'tool' strategy")


def has_images(request: ModelRequest) -> bool:
    """Whether any message carries an image part."""
    return any(
        isinstance(message.content, list) and any(isinstance(part, ImagePart) for part in message.content)
        for message in request.messages
    )


# --- responses ---------------------------------------------------------------------


def to_usage(usage: Any) -> TokenUsage:
    """The provider-reported usage of one request."""
    if usage is None:
        return TokenUsage(requests=1)
    # A count below zero, or a total below its parts, is not one: it would let a run slip under its token budget.
    prompt = max(0, int(getattr(usage, "prompt_tokens", 0) or 0))
    completion = max(0, int(getattr(usage, "completion_tokens", 0) or 0))
    total = max(prompt + completion, int(getattr(usage, "total_tokens", 0) or 0))
    return TokenUsage(input_tokens=prompt, output_tokens=completion, total_tokens=total, requests=1)


_FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}


def to_finish_reason(reason: str | None, *, has_tool_calls: bool) -> FinishReason:
    """The provider's finish reason in Gecko's vocabulary."""
    mapped = _FINISH_REASONS.get(reason or "stop", "stop")
    if has_tool_calls and mapped == "stop":
        # Some providers say "stop" even when the reply is tool calls.
        return "tool_calls"
    return mapped


# --- errors ------------------------------------------------------------------------


def checked_timeout(value: Any) -> float:
    """`value` as the seconds of one request; anything but a positive number is a `ConfigurationError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {value!r}")
    return float(value)


def malformed(label: str, what: str, exc: Exception) -> ModelOutputError:
    """The error for `what` ("a reply", "a stream chunk") whose fields litellm let through with the wrong shape."""
    detail = " ".join(str(exc).split())[:300]
    return ModelOutputError(
        f"{label}: {what} with fields of the wrong shape ({type(exc).__name__}: {detail}); "
        "the endpoint does not speak the OpenAI format"
    )


async def within(seconds: float, label: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, cut off after `seconds` with a `ModelTimeoutError`.

    httpx's timeout bounds each read, not the request: a server trickling its answer byte by
    byte, or sending keep-alive comments, would outlast it.
    """
    try:
        with anyio.fail_after(seconds):
            return await call()
    except TimeoutError as exc:
        if isinstance(exc, ModelTimeoutError):
            raise
        raise ModelTimeoutError(
            f"{label}: no answer within {seconds:g} s {what}; raise timeout= or check the endpoint"
        ) from exc


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return _seconds(float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _seconds(value: float) -> float | None:
    """A wait hint in seconds; None for NaN or infinity, which are no hint."""
    return max(0.0, value) if math.isfinite(value) else None


def _is_connection_failure(exc: BaseException) -> bool:
    """Whether a transport failure (refused, reset, DNS) caused `exc`.

    An `APIConnectionError` alone is not enough: litellm raises it for a stream it could not
    parse too, from a server that answered; a protocol error (a stream cut short) is the
    server's failure too.
    """
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (httpx.TimeoutException, TimeoutError)):
            return False
        if isinstance(current, (httpx.ConnectError, httpx.NetworkError, OSError)):
            return True
        current = current.__cause__ or current.__context__
    return False


# How litellm words a reply it could not read into a response (the validation trace that follows can quote
# "tool_calls" and "Input should be", which would otherwise read as the endpoint rejecting tools).
_UNREADABLE_REPLY = "Invalid response object"


def translate_error(
    exc: Exception,
    label: str,
    *,
    timeout: float,
    api_base: str | None,
    used: tuple[_features.Feature, ...] = (),
) -> Exception:
    """The typed Gecko error for a litellm / provider failure; other exceptions come back unchanged.

    Args:
        exc: what litellm raised.
        label: the model as the user named it, for the message.
        timeout: the per-request timeout in seconds, for the message.
        api_base: the endpoint, for connection messages.
        used: the optional request features sent; an answer rejecting one of them becomes an
            `UnsupportedRequestError` naming it.
    """
    import httpx
    import openai
    from litellm.exceptions import ContextWindowExceededError

    if isinstance(exc, ModelError):
        return exc
    if not isinstance(exc, (openai.OpenAIError, httpx.HTTPError)):
        return exc
    detail = redact(str(exc))
    status = getattr(exc, "status_code", None)
    error: ModelError
    if isinstance(exc, ContextWindowExceededError):
        error = ContextLengthError(
            f"{label}: the request does not fit the model's context window ({detail}); trim the history "
            "(e.g. with TokenMemory) or use a model with a larger window"
        )
    elif isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        error = ModelAuthenticationError(
            f"{label}: the provider rejected the credentials ({detail}); check api_key or the provider's "
            "API-key environment variable"
        )
    elif isinstance(exc, openai.RateLimitError):
        retry_after = _retry_after(exc)
        hint = f"; it asked to retry after {retry_after:g} s" if retry_after is not None else ""
        error = ModelRateLimitError(
            f"{label}: rate limited by the provider{hint} ({detail}); lower the request rate or allow more "
            "attempts in RetryPolicy",
            retry_after=retry_after,
        )
    elif isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        error = ModelTimeoutError(
            f"{label}: no answer within {timeout:g} s ({detail}); raise timeout= or check the endpoint"
        )
    elif _is_connection_failure(exc) or isinstance(exc, httpx.TransportError):
        endpoint = redact_url(api_base) if api_base else "the provider"
        error = ModelConnectionError(
            f"{label}: could not reach {endpoint} ({detail}); check api_base and that the server is running"
        )
    elif _UNREADABLE_REPLY not in detail and (feature := _features.rejected_feature(status, detail, used)) is not None:
        error = UnsupportedRequestError(
            f"{label}: {_features.display(api_base)} does not accept {_features.DESCRIPTIONS[feature]} ({detail}); "
            "ask without it (another structured-output strategy, or no tools)",
            feature=feature,
        )
    elif isinstance(exc, (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError)) or (
        isinstance(status, int) and 400 <= status < 500
    ):
        error = ModelBadRequestError(
            f"{label}: the provider rejected the request ({detail}); check the model name and parameters"
        )
    else:
        error = ModelServerError(f"{label}: the provider failed ({detail}); retry later or configure a FallbackModel")
    error.__cause__ = exc
    return error
