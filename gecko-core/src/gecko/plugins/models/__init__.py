"""The model kind: the chat-model and embedder contracts, their factory, the shared retry policy
and installed providers.

Providers live in separate distributions registered in the `gecko.models` entry-point group
(name = provider prefix). Preset classes such as `ZhipuChat` resolve lazily from there, so
`from gecko.plugins.models import ZhipuChat` works once `gecko-ai-models` is installed and says
what to install when it is not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from gecko.errors import ConfigurationError, ModelOutputError, PluginLoadError
from gecko.plugins._numbers import float_vector
from gecko.plugins.models.retry import RETRYABLE_ERRORS, RetryPolicy
from gecko.plugins.registry import Registry
from gecko.types import FinishReason, Message, TokenUsage, ToolCall

__all__ = (
    "ModelCapabilities",
    "ToolDefinition",
    "ResponseFormat",
    "ModelRequest",
    "ModelResponse",
    "ToolCallDelta",
    "ModelChunk",
    "StreamAccumulator",
    "ChatModel",
    "Embedder",
    "embedding_texts",
    "checked_vectors",
    "ModelConfig",
    "RetryPolicy",
    "RETRYABLE_ERRORS",
    "FinishReason",
    "model_registry",
    "create_model",
    "create_embedder",
)


class ModelCapabilities(BaseModel):
    """What a model can do; the engines choose strategies from these flags."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    tools: bool = True
    json_schema: bool = False
    grammar: bool = False
    streaming: bool = True
    vision: bool = False


class ToolDefinition(BaseModel):
    """A tool as the model sees it: name, description and JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ResponseFormat(BaseModel):
    """A constraint on the reply: a JSON schema (native or grammar-enforced) or plain JSON."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["json_schema", "json_object", "grammar"]
    name: str = "output"
    json_schema: dict[str, Any] | None = None
    strict: bool = True


class ModelRequest(BaseModel):
    """Everything sent to a model in one call. Hooks may edit `messages` before it is sent."""

    model_config = ConfigDict(defer_build=True)

    messages: list[Message]
    tools: list[ToolDefinition] = Field(default_factory=list)
    tool_choice: Literal["auto", "required", "none"] = "auto"
    response_format: ResponseFormat | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class ModelResponse(BaseModel):
    """One completed model reply with the provider-reported usage."""

    model_config = ConfigDict(defer_build=True)

    message: Message
    usage: TokenUsage = Field(default_factory=TokenUsage)
    finish_reason: FinishReason = "stop"
    model: str = ""


class ToolCallDelta(BaseModel):
    """A fragment of a streamed tool call; fragments with the same `index` concatenate."""

    model_config = ConfigDict(defer_build=True)

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ModelChunk(BaseModel):
    """One streamed piece of a reply: text, tool-call fragments, and on the last chunks usage."""

    model_config = ConfigDict(defer_build=True)

    text: str = ""
    tool_calls: list[ToolCallDelta] = Field(default_factory=list)
    usage: TokenUsage | None = None
    finish_reason: FinishReason | None = None


class StreamAccumulator:
    """Assembles streamed chunks into the `ModelResponse` a non-streamed call would return."""

    def __init__(self, model: str = "") -> None:
        self._model = model
        self._text: list[str] = []
        self._calls: list[dict[str, Any]] = []
        self._open_calls: dict[int, dict[str, Any]] = {}
        self._usage = TokenUsage()
        self._finish_reason: FinishReason = "stop"

    def add(self, chunk: ModelChunk) -> None:
        """Fold one chunk in."""
        if chunk.text:
            self._text.append(chunk.text)
        for delta in chunk.tool_calls:
            call = self._open_calls.get(delta.index)
            if call is None or (delta.id and call["id"] and delta.id != call["id"]):
                # A new id at an index already in use starts another call (some providers put every call at 0).
                call = {"index": delta.index, "id": None, "name": "", "arguments": []}
                self._open_calls[delta.index] = call
                self._calls.append(call)
            if delta.id:
                call["id"] = delta.id
            if delta.name:
                call["name"] += delta.name
            call["arguments"].append(delta.arguments)
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.finish_reason is not None:
            self._finish_reason = chunk.finish_reason

    def response(self) -> ModelResponse:
        """The assembled reply."""
        tool_calls = [
            ToolCall(
                id=call["id"] or f"call_{call['index']}",
                name=call["name"],
                arguments="".join(call["arguments"]) or "{}",
            )
            for call in sorted(self._calls, key=lambda call: call["index"])
        ]
        text = "".join(self._text)
        return ModelResponse(
            message=Message.assistant(text or None, tool_calls),
            usage=self._usage,
            finish_reason=self._finish_reason,
            model=self._model,
        )


class ModelConfig(BaseModel):
    """Connection and sampling settings shared by provider plugins."""

    model_config = ConfigDict(defer_build=True)

    model_name: str
    api_key: SecretStr | None = None
    api_base: str | None = None
    timeout: float = 60.0
    temperature: float | None = None
    max_retries: int = 3
    extra: dict[str, Any] = Field(default_factory=dict)


class ChatModel(ABC):
    """A chat model. Plugins subclass it and register the class under its `provider` name."""

    provider: ClassVar[str]
    capabilities: ModelCapabilities = ModelCapabilities.model_construct()
    model: str = ""
    # Whether requests go out over HTTP with `request.settings["extra_headers"]` as headers; only then
    # may telemetry put a W3C `traceparent` there (other models may reject unknown settings).
    sends_extra_headers: bool = False

    @abstractmethod
    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send `request` and return the whole reply."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Send `request` and yield the reply in chunks; the default replays `complete`."""
        return self._replay(request)

    async def _replay(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        response = await self.complete(request)
        message = response.message
        yield ModelChunk(
            text=message.text,
            tool_calls=[
                ToolCallDelta(index=i, id=call.id, name=call.name, arguments=call.arguments)
                for i, call in enumerate(message.tool_calls)
            ],
            usage=response.usage,
            finish_reason=response.finish_reason,
        )

    async def aclose(self) -> None:  # noqa: B027 - optional for providers without connections
        """Release connections; the default has nothing to release."""


class Embedder(ABC):
    """Turns texts into vectors of a fixed `dimension`."""

    provider: ClassVar[str]
    dimension: int

    @abstractmethod
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""

    async def embed_query(self, text: str) -> list[float]:
        """The vector of one query text."""
        return list(checked_vectors(self, await self.embed([text]), 1)[0])


def embedding_texts(texts: Sequence[str]) -> list[str]:
    """`texts` as a list for `Embedder.embed`, refusing a lone string (it would embed each character).

    Raises:
        TypeError: `texts` is a `str`; `embed_query()` embeds one text.
    """
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts; use embed_query() for one text")
    return list(texts)


def checked_vectors(embedder: Embedder, vectors: object, count: int) -> list[Sequence[float]]:
    """`vectors`, what `embedder` answered for `count` texts, if it is `count` vectors of `embedder.dimension` items.

    Lists, tuples and numpy arrays of finite real numbers pass (`float_vector`: no bool, NaN or infinity).

    Raises:
        ModelOutputError: another number of vectors, a vector of another length or of other items, or no array.
    """
    where = f"embedder {type(embedder).__qualname__} (dimension {embedder.dimension})"
    if not _is_array(vectors):
        raise ModelOutputError(f"{where} returned a {type(vectors).__name__} for {count} texts")
    if len(vectors) != count:
        raise ModelOutputError(f"{where} returned {len(vectors)} vectors for {count} texts")
    checked: list[Sequence[float]] = list(vectors)
    for index, vector in enumerate(checked):
        if not _is_array(vector):
            kind = type(vector).__name__
            raise ModelOutputError(f"{where} returned a {kind} as vector {index}, not a list of numbers")
        if len(vector) != embedder.dimension:
            raise ModelOutputError(f"{where} returned vector {index} with {len(vector)} components")
        try:
            float_vector(vector)
        except ValueError as exc:
            raise ModelOutputError(f"{where} returned vector {index}, which {exc}") from None
    return checked


def _is_array(value: object) -> TypeGuard[Collection[Any]]:
    """Whether `value` is a list, a tuple, a numpy array or the like: sized and iterable, not text or a mapping."""
    return isinstance(value, Collection) and not isinstance(value, (str, bytes, Mapping))


def _validate_model_class(name: str, plugin: object) -> type[ChatModel] | type[Embedder]:
    if not isinstance(plugin, type) or not issubclass(plugin, (ChatModel, Embedder)):
        raise PluginLoadError(f"model plugin {name!r} must be a ChatModel or Embedder subclass, got {plugin!r}")
    if getattr(plugin, "provider", None) != name:
        raise PluginLoadError(
            f"model plugin registered as {name!r} declares provider {getattr(plugin, 'provider', None)!r}"
        )
    return plugin


_GECKO_MODELS_NAMES = ("litellm", "openai", "zhipu", "ollama", "anthropic", "litellm-embedding")

model_registry: Registry[type[ChatModel] | type[Embedder]] = Registry(
    "gecko.models",
    "model provider",
    validate=_validate_model_class,
    builtins={"scripted": "gecko.testing.models:ScriptedModel", "function": "gecko.testing.models:FunctionModel"},
    install_hints={name: "gecko-ai-models" for name in _GECKO_MODELS_NAMES},
)


def _split_spec(spec: str) -> tuple[str, str]:
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise ConfigurationError(f"model spec {spec!r} must look like 'provider:model', e.g. 'openai:gpt-4o-mini'")
    return provider, model


def create_model(spec: str, **settings: Any) -> ChatModel:
    """A chat model from `'provider:model'`, e.g. `create_model("zhipu:glm-4-flash", api_key=...)`."""
    provider, model = _split_spec(spec)
    cls = model_registry.get(provider)
    if not issubclass(cls, ChatModel):
        raise ConfigurationError(f"provider {provider!r} is an embedder, not a chat model")
    return cls(model=model, **settings)  # type: ignore[call-arg]


def create_embedder(spec: str, **settings: Any) -> Embedder:
    """An embedder from `'provider:model'`."""
    provider, model = _split_spec(spec)
    cls = model_registry.get(provider)
    if not issubclass(cls, Embedder):
        raise ConfigurationError(f"provider {provider!r} is a chat model, not an embedder")
    return cls(model=model, **settings)  # type: ignore[call-arg]


def __getattr__(name: str) -> Any:
    # Preset classes (`ZhipuChat`, ...) come from installed plugins, resolved on first access.
    from gecko.plugins.models.presets import resolve_preset

    return resolve_preset(__name__, name)
