"""A local OpenAI-protocol HTTP server for tests: real sockets, scripted replies, recorded requests.

Point any OpenAI-compatible client (litellm, openai, httpx) at `server.base_url` and the server
answers `/v1/chat/completions` (JSON or SSE streaming) and `/v1/embeddings` from a script. Script
items are replies (`"text"`, a list of `ToolCall`, a `ModelResponse` from `reply()` /
`tool_calls_reply()`), raw HTTP answers (`error(429, retry_after=1)`, `malformed()`), `slow(item,
seconds)`, `trickle(reply, pause)` (a body sent a few bytes at a time), or a callable that
receives the request body and returns one of those.

Example:
    ```python
    with OpenAIServer([tool_calls_reply(("add", '{"a": 1}')), "3"]) as server:
        model = OpenAIChat(model="gpt-4o-mini", api_key="test", api_base=server.base_url)
    ```

The server runs in a background thread (stdlib only), so it serves sync and async tests on any
event loop; use it as `with` or `async with`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias

import anyio

from gecko.plugins.models import ModelResponse
from gecko.types import ToolCall

__all__ = (
    "OpenAIServer",
    "HTTPReply",
    "Slow",
    "Trickle",
    "RecordedRequest",
    "ScriptItem",
    "error",
    "malformed",
    "slow",
    "trickle",
)


@dataclass(frozen=True)
class HTTPReply:
    """A raw HTTP answer sent as is: status, headers and body."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slow:
    """`item`, answered after `seconds` (interrupted when the server stops)."""

    item: ScriptItem
    seconds: float


@dataclass(frozen=True)
class Trickle:
    """`reply` with its body sent `size` bytes at a time, `pause` seconds apart (a slow-loris server)."""

    reply: HTTPReply
    pause: float
    size: int = 1


ScriptItem: TypeAlias = (
    str | list[ToolCall] | ModelResponse | HTTPReply | Slow | Trickle | Callable[[dict[str, Any]], Any]
)
"""One scripted answer; a callable receives the JSON request body and returns another item."""

EmbeddingItem: TypeAlias = list[list[float]] | HTTPReply | Slow | Trickle
"""One scripted embeddings answer: one vector per input, or a raw HTTP answer."""


def error(status: int, message: str = "", *, retry_after: float | None = None, code: str | None = None) -> HTTPReply:
    """An OpenAI-style error body with `status`, optionally with a `Retry-After` header in seconds."""
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    body = {"error": {"message": message or f"scripted error {status}", "type": "scripted_error", "code": code}}
    return HTTPReply(status=status, body=json.dumps(body).encode(), headers=headers)


def malformed(body: str = '{"choices": [ this is not json') -> HTTPReply:
    """A 200 answer whose body is not valid JSON."""
    return HTTPReply(status=200, body=body.encode(), headers={"Content-Type": "application/json"})


def slow(item: ScriptItem, seconds: float) -> Slow:
    """`item`, answered after `seconds`."""
    return Slow(item, seconds)


def trickle(reply: HTTPReply, pause: float, *, size: int = 1) -> Trickle:
    """`reply`, its headers at once and its body `size` bytes every `pause` seconds."""
    return Trickle(reply, pause, size)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; `received_at` is `time.monotonic()`."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    received_at: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class OpenAIServer:
    """A scripted OpenAI-protocol server on 127.0.0.1 and a free port.

    Args:
        chat: answers to `/v1/chat/completions`, one per request, in order.
        embeddings: answers to `/v1/embeddings`; when omitted (or run out) every text gets a vector
            from `embed`.
        embedding_dimension: length of the default vectors.
        embed: computes the vectors of the texts of one request (e.g. `HashingEmbedder(d).vector`
            per text, for meaningful similarities); by default each text's vector of
            `embedding_dimension` floats derived from its hash.
        cycle: start the chat script over when it runs out, instead of answering 500.
    """

    def __init__(
        self,
        chat: Sequence[ScriptItem] = (),
        *,
        embeddings: Sequence[EmbeddingItem] | None = None,
        embedding_dimension: int = 8,
        embed: Callable[[list[str]], list[list[float]]] | None = None,
        cycle: bool = False,
    ) -> None:
        self._chat = list(chat)
        self._embeddings = None if embeddings is None else list(embeddings)
        self.embedding_dimension = embedding_dimension
        self._embed = embed
        self._cycle = cycle
        self._chat_position = 0
        self._embedding_position = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._httpd is not None:
            return
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; slow answers in progress are cut short."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> OpenAIServer:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # shutdown() waits for the serving loop's next poll; keep that off the event loop.
        await anyio.to_thread.run_sync(self.stop)

    # --- what tests read -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; use it as a context manager or call start()")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, `http://127.0.0.1:<port>/v1`."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat-completion requests received so far."""
        return [r.json() for r in self.requests if r.path.endswith("/chat/completions")]

    def add(self, *items: ScriptItem) -> None:
        """Append chat answers to the script."""
        with self._lock:
            self._chat.extend(items)

    # --- serving -------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_chat(self) -> ScriptItem | None:
        with self._lock:
            if self._chat_position >= len(self._chat) and self._cycle and self._chat:
                self._chat_position = 0
            if self._chat_position >= len(self._chat):
                return None
            item = self._chat[self._chat_position]
            self._chat_position += 1
            return item

    def _next_embedding(self) -> EmbeddingItem | None:
        with self._lock:
            if self._embeddings is None or self._embedding_position >= len(self._embeddings):
                return None
            item = self._embeddings[self._embedding_position]
            self._embedding_position += 1
            return item

    def _wait(self, seconds: float) -> bool:
        """Sleep `seconds`; False when the server stopped meanwhile."""
        return not self._stopping.wait(seconds)

    def _chat_answer(self, body: dict[str, Any]) -> HTTPReply | Trickle | _Stream | None:
        item = self._next_chat()
        if item is None:
            return error(500, f"gecko test server: the chat script ran out after {self._chat_position} replies")
        while True:
            if isinstance(item, Slow):
                if not self._wait(item.seconds):
                    return None
                item = item.item
            elif callable(item) and not isinstance(item, (ModelResponse, HTTPReply, Trickle)):
                item = item(body)
            else:
                break
        if isinstance(item, (HTTPReply, Trickle)):
            return item
        response = _as_response(item)
        model = str(body.get("model", "scripted"))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return _Stream(list(_stream_events(response, model, include_usage)))
        return _json_reply(_completion_body(response, model))

    def _embedding_answer(self, body: dict[str, Any]) -> HTTPReply | Trickle | None:
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else [str(text) for text in inputs]
        item = self._next_embedding()
        while isinstance(item, Slow):
            if not self._wait(item.seconds):
                return None
            item = item.item  # type: ignore[assignment]
        if isinstance(item, (HTTPReply, Trickle)):
            return item
        if item is not None:
            vectors = item
        elif self._embed is not None:
            vectors = self._embed(texts)
        else:
            vectors = [_hash_vector(text, self.embedding_dimension) for text in texts]
        tokens = sum(len(text.split()) for text in texts)
        return _json_reply(
            {
                "object": "list",
                "model": body.get("model", "scripted"),
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


@dataclass(frozen=True)
class _Stream:
    events: list[bytes]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: OpenAIServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, delayed ACKs add ~40 ms per request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read `server.requests` instead."""

    def do_GET(self) -> None:
        self._record(b"")
        if self.path.rstrip("/").endswith("/models"):
            self._send(_json_reply({"object": "list", "data": [{"id": "scripted", "object": "model"}]}))
        else:
            self._send(error(404, f"no route {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        self._record(raw)
        owner = self.server.owner
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(error(400, "request body is not JSON"))
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/chat/completions"):
            answer = owner._chat_answer(body)
            if isinstance(answer, _Stream):
                self._send_stream(answer)
            elif isinstance(answer, Trickle):
                self._send_trickle(answer)
            elif answer is not None:
                self._send(answer)
        elif path.endswith("/embeddings"):
            reply = owner._embedding_answer(body)
            if isinstance(reply, Trickle):
                self._send_trickle(reply)
            elif reply is not None:
                self._send(reply)
        else:
            self._send(error(404, f"no route {self.path}"))

    def _record(self, body: bytes) -> None:
        self.server.owner._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body,
                received_at=time.monotonic(),
            )
        )

    def _send(self, reply: HTTPReply) -> None:
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _send_trickle(self, trickle: Trickle) -> None:
        reply = trickle.reply
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        for start in range(0, len(reply.body), trickle.size):
            if not self.server.owner._wait(trickle.pause):
                return
            try:
                self.wfile.write(reply.body[start : start + trickle.size])
                self.wfile.flush()
            except OSError:  # the client gave up
                return

    def _send_stream(self, stream: _Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in stream.events:
            self.wfile.write(event)
            self.wfile.flush()
        self.close_connection = True


# --- OpenAI wire format --------------------------------------------------------------


def _as_response(item: str | list[ToolCall] | ModelResponse) -> ModelResponse:
    from gecko.testing.models import reply, tool_calls_reply

    if isinstance(item, ModelResponse):
        return item
    if isinstance(item, str):
        return reply(item)
    return tool_calls_reply(*item)


def _json_reply(body: dict[str, Any]) -> HTTPReply:
    return HTTPReply(status=200, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def _usage_body(response: ModelResponse) -> dict[str, int]:
    usage = response.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _completion_body(response: ModelResponse, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.message.text or None}
    if response.message.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in response.message.tool_calls
        ]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": response.finish_reason}],
        "usage": _usage_body(response),
    }


def _stream_events(response: ModelResponse, model: str, include_usage: bool) -> Iterator[bytes]:
    created = int(time.time())

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    yield event({"role": "assistant", "content": ""})
    text = response.message.text
    for piece in _pieces(text):
        yield event({"content": piece})
    for index, call in enumerate(response.message.tool_calls):
        head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        yield event({"tool_calls": [head]})
        middle = len(call.arguments) // 2
        for part in (call.arguments[:middle], call.arguments[middle:]):
            yield event({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield event({}, response.finish_reason)
    if include_usage:
        usage_chunk = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage_body(response),
        }
        yield b"data: " + json.dumps(usage_chunk).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _pieces(text: str) -> list[str]:
    """Words with their leading space, as providers stream them."""
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words) if word]


def _hash_vector(text: str, dimension: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dimension)]
