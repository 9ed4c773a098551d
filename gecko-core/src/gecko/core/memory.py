"""Short-term memories: which part of a conversation is sent to the model.

The agent calls `await memory.prepare(messages)` before every model call and sends the returned
window. Both memories here keep the leading system messages, never separate an assistant's tool
calls from their results, and truncate oversized tool results so one call cannot fill the window.
`SummaryTokenMemory` also folds the oldest turns into one summary written by a model.
Whatever a memory writes to its storage (offloaded tool results, shared summaries) expires
after `storage_ttl`; the conversation itself is kept by the agent's sessions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import anyio

from gecko.core._tokens import TokenCounter, estimate_tokens, resolve_counter
from gecko.core.state import current_run_usage
from gecko.errors import ConfigurationError, SummarizationError, UsageLimitExceeded
from gecko.plugins.models import ChatModel, ModelRequest
from gecko.plugins.storage import Storage
from gecko.types import ImagePart, Message, Role, TextPart, TokenUsage, ToolCall

__all__ = (
    "MEMORY_HEADERS",
    "RECALL_HEADER",
    "SUMMARY_HEADER",
    "SummaryTokenMemory",
    "TokenCounter",
    "TokenMemory",
    "estimate_tokens",
    "is_memory_recall",
    "memory_message",
)

_MessageKey = tuple[Role, str | tuple[TextPart | ImagePart, ...] | None, tuple[ToolCall, ...], str | None, str | None]

# Fixed costs in the OpenAI chat format: per message framing, per tool call, per image.
_MESSAGE_OVERHEAD = 4
_TOOL_CALL_OVERHEAD = 3
_IMAGE_TOKENS = {"low": 85, "auto": 765, "high": 765}

_TOOL_RESULT_KEY = "gecko:memory:tool-result:{digest}"
_SUMMARY_KEY = "gecko:memory:summary:{digest}"
_SUMMARY_LEASE = "gecko:memory:summary-lease:{digest}"

DEFAULT_STORAGE_TTL = 7 * 24 * 3600.0
"""Seconds what a memory writes to its storage (offloaded tool results, shared summaries) lives."""

DEFAULT_SUMMARY_INSTRUCTIONS = (
    "Summarize the conversation below for the assistant that continues it. Keep facts, decisions, names, "
    "numbers, open questions and the results of tool calls; drop small talk. If it starts with an earlier "
    "summary, merge that summary in. Answer with the summary only, in at most 200 words."
)

SUMMARY_HEADER = "Summary of the earlier conversation:"
"""The first line of `SummaryTokenMemory`'s summary message."""
RECALL_HEADER = "Recalled from long-term memory (earlier turns and stored facts, most relevant first):"
"""The first line of `LongTermMemory`'s recall message."""
MEMORY_HEADERS = (SUMMARY_HEADER, RECALL_HEADER)
"""The first lines of the system messages memories write (`memory_message`), which `is_memory_recall` recognises."""

# A memory recall is marked by its first line, not by a message field: the text is what the model already read
# before this marker existed, so providers receive the same request; a field (`name` is sent by some providers)
# would change it. A developer's system prompt that starts with a header line is taken for a recall (checked).
_RECALL_PREFIXES = tuple(f"{header}\n" for header in MEMORY_HEADERS)


def memory_message(header: str, body: str) -> Message:
    """The system message a memory hands the model: `header` (one of `MEMORY_HEADERS`), a line break, `body`."""
    if header not in MEMORY_HEADERS:
        raise ConfigurationError(f"a memory message starts with one of MEMORY_HEADERS, not {header!r}")
    return Message.system(f"{header}\n{body}")


def is_memory_recall(message: Message) -> bool:
    """Whether `message` is a summary or recall a memory wrote (`memory_message`): system text made of earlier
    turns and stored facts, not the developer's instructions."""
    return (
        message.role is Role.SYSTEM
        and isinstance(message.content, str)
        and message.content.startswith(_RECALL_PREFIXES)
    )


def _message_key(message: Message) -> _MessageKey:
    content = message.content
    return (
        message.role,
        tuple(content) if isinstance(content, list) else content,
        tuple(message.tool_calls),
        message.tool_call_id,
        message.name,
    )


def _split_system(messages: Sequence[Message]) -> tuple[list[Message], list[Message]]:
    head = 0
    while head < len(messages) and messages[head].role is Role.SYSTEM:
        head += 1
    return list(messages[:head]), list(messages[head:])


def _unit_start(messages: Sequence[Message], end: int) -> int:
    """Start of the unit ending at `end - 1`: a message, or an assistant's tool calls with their results."""
    start = end - 1
    if messages[start].role is not Role.TOOL:
        return start
    while start > 0 and messages[start - 1].role is Role.TOOL:
        start -= 1
    if start > 0 and messages[start - 1].role is Role.ASSISTANT and messages[start - 1].tool_calls:
        start -= 1
    return start


class TokenMemory:
    """A window of the most recent turns that fits `max_tokens`.

    Trimming drops the oldest units first, where a unit is one message or an assistant message
    with tool calls together with its tool results. The leading system messages are always kept,
    and so is the newest unit, even when it alone exceeds the budget (the model then reports the
    overflow instead of losing the current question).

    Token counts come from `counter`: by default a built-in estimate that needs no download
    (see `estimate_tokens`); `"tiktoken"` uses tiktoken's encoding of `model` (install tiktoken;
    its encoding files must be cached or downloadable); or pass any `(text) -> int` callable.
    Per-message counts are cached in an LRU of `cache_size` entries.

    Args:
        max_tokens: Budget of the window sent to the model.
        model: Model whose tokenizer `counter="tiktoken"` uses.
        counter: How to count tokens, see above.
        max_tool_result_tokens: Tool results above this are truncated; default a quarter of `max_tokens`.
        storage: Where full tool results are offloaded (the truncated text names the key); it must
            support TTLs, as every offloaded result expires after `storage_ttl`. A conversation
            itself is kept by the agent's sessions, not by the memory.
        storage_ttl: Seconds an offloaded tool result lives in `storage`.
        cache_size: Entries of the per-message token count cache.
    """

    def __init__(
        self,
        max_tokens: int = 4000,
        model: str = "gpt-4o-mini",
        *,
        counter: TokenCounter | Literal["estimate", "tiktoken"] | None = None,
        max_tool_result_tokens: int | None = None,
        storage: Storage | None = None,
        storage_ttl: float = DEFAULT_STORAGE_TTL,
        cache_size: int = 32768,
    ) -> None:
        if max_tokens <= 0:
            raise ConfigurationError(f"max_tokens must be positive, got {max_tokens}")
        if max_tool_result_tokens is not None and max_tool_result_tokens <= _MESSAGE_OVERHEAD:
            raise ConfigurationError(
                f"max_tool_result_tokens must exceed {_MESSAGE_OVERHEAD}, got {max_tool_result_tokens}"
            )
        self.max_tokens = max_tokens
        self.max_tool_result_tokens = max_tool_result_tokens or max(max_tokens // 4, _MESSAGE_OVERHEAD + 1)
        if storage_ttl <= 0:
            raise ConfigurationError(f"storage_ttl must be positive seconds, got {storage_ttl!r}")
        if storage is not None and not storage.capabilities.ttl:
            raise ConfigurationError(
                f"{type(storage).__name__} has no TTL support, so what the memory writes there would never be "
                "removed; use a storage with TTLs (memory://, sqlite://, redis://) or none"
            )
        self.storage = storage
        self.storage_ttl = storage_ttl
        self._count_text = resolve_counter(counter, model)
        self._count_key = functools.lru_cache(maxsize=cache_size)(self._count_uncached)
        self._offloaded: OrderedDict[str, float] = OrderedDict()

    # --- counting -----------------------------------------------------------------

    def count(self, message: Message) -> int:
        """Tokens `message` takes in a request, framing included."""
        return self._count_key(_message_key(message))

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens of all `messages`."""
        return sum(self.count(message) for message in messages)

    def _count_uncached(self, key: _MessageKey) -> int:
        _, content, tool_calls, _, name = key
        total = _MESSAGE_OVERHEAD
        if isinstance(content, str):
            total += self._count_text(content)
        elif content:
            for part in content:
                total += self._count_text(part.text) if isinstance(part, TextPart) else _IMAGE_TOKENS[part.detail]
        for call in tool_calls:
            total += _TOOL_CALL_OVERHEAD + self._count_text(call.name) + self._count_text(call.arguments)
        if name:
            total += 1 + self._count_text(name)
        return total

    # --- the protocol the agent uses ----------------------------------------------

    async def prepare(self, messages: Sequence[Message]) -> list[Message]:
        """The window of `messages` to send to the model: system messages plus the newest units that fit."""
        system, rest = _split_system(messages)
        _, window = await self._fit(rest, self.max_tokens - self.count_messages(system))
        return [*system, *window]

    async def _fit(self, messages: Sequence[Message], budget: int) -> tuple[int, list[Message]]:
        """Walk back from the newest unit while units fit `budget`; (index of the first kept, kept window)."""
        kept: list[Message] = []  # newest first; reversed once at the end
        used = 0
        end = len(messages)
        while end > 0:
            start = _unit_start(messages, end)
            unit = [
                await self._fit_tool_result(message) if message.role is Role.TOOL else message
                for message in messages[start:end]
            ]
            cost = self.count_messages(unit)
            if kept and used + cost > budget:
                break
            kept.extend(reversed(unit))
            used += cost
            end = start
        kept.reverse()
        return end, kept

    async def _fit_tool_result(self, message: Message) -> Message:
        tokens = self.count(message)
        if tokens <= self.max_tool_result_tokens:
            return message
        text = message.text
        reference = None
        if self.storage is not None:
            reference = _TOOL_RESULT_KEY.format(digest=hashlib.sha256(text.encode()).hexdigest()[:32])
            written = self._offloaded.get(reference)
            now = time.monotonic()
            # Written again once half its lifetime is gone, so a reference handed out stays readable.
            if written is None or now - written > self.storage_ttl / 2:
                await self.storage.set(reference, text, ttl=self.storage_ttl)
                self._offloaded[reference] = now
                if len(self._offloaded) > 1024:
                    self._offloaded.popitem(last=False)
        return self._truncated(message, text, tokens, reference)

    def _truncated(self, message: Message, text: str, tokens: int, reference: str | None) -> Message:
        where = f"; the full result is in storage key {reference!r}" if reference else ""
        keep = int(len(text) * self.max_tool_result_tokens / tokens)
        while True:
            note = f"\n[tool result truncated: showing the first {keep} of {len(text)} characters{where}]"
            shorter = message.model_copy(update={"content": text[:keep] + note})
            if self.count(shorter) <= self.max_tool_result_tokens or keep == 0:
                return shorter
            keep //= 2


class _Flight:
    """One summarization in progress in this process; the callers that wait on it share its outcome."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.text: str | None = None
        self.error: SummarizationError | None = None


class SummaryTokenMemory(TokenMemory):
    """A token window whose oldest turns are folded into one summary written by `model`.

    When the history exceeds `max_tokens`, the turns older than the newest `keep_ratio` of the
    budget are summarized (together with the previous summary, if any) into one system message
    placed after the leading system messages. Summaries are cached by a hash of the turns they
    cover, so a growing history is summarized again only when it overflows again.

    Concurrent callers with the same history share one summarization (single flight). With a
    `storage` that has leases, the flight also holds across processes sharing that storage: one
    process holds the lease `gecko:memory:summary-lease:<hash>` and writes the summary to
    `gecko:memory:summary:<hash>`; the others poll for it. A summary longer than its share of the
    budget (`1 - keep_ratio`) is cut to fit and marked `[...]`. A failing summarizer (an error, an
    empty summary) raises `SummarizationError` to every waiting caller and changes nothing, so the
    next call retries.

    Within an agent run, each summary request is charged to that run (`current_run_usage`): checked
    against its `UsageLimits` before it is sent (`UsageLimitExceeded` reaches that run's caller; the
    other callers waiting for the summary go on without it) and counted in its usage and output.

    Args:
        model: The chat model that writes summaries.
        max_tokens: Budget of the window sent to the model.
        keep_ratio: Share of the budget (after system messages) kept verbatim when summarizing.
        instructions: System prompt of the summarization request.
        tokenizer_model: Model whose tokenizer `counter="tiktoken"` uses; default `model.model`.
        counter: How to count tokens, as for `TokenMemory`.
        max_tool_result_tokens: Tool results above this are truncated, as for `TokenMemory`.
        storage: Shares summaries (and the single flight) across processes; offloads tool results.
            Both expire after `storage_ttl`.
        storage_ttl: Seconds a shared summary or an offloaded tool result lives in `storage`.
        lease_ttl: Seconds a process may take to summarize before another may take over.
        wait_timeout: Seconds to wait for another process's summary before giving up.
        poll_interval: Seconds between checks for another process's summary.
        cache_size: Entries of the per-message token count cache.
    """

    def __init__(
        self,
        model: ChatModel,
        max_tokens: int = 4000,
        *,
        keep_ratio: float = 0.5,
        instructions: str = DEFAULT_SUMMARY_INSTRUCTIONS,
        tokenizer_model: str | None = None,
        counter: TokenCounter | Literal["estimate", "tiktoken"] | None = None,
        max_tool_result_tokens: int | None = None,
        storage: Storage | None = None,
        storage_ttl: float = DEFAULT_STORAGE_TTL,
        lease_ttl: float = 60.0,
        wait_timeout: float = 120.0,
        poll_interval: float = 0.05,
        cache_size: int = 32768,
    ) -> None:
        super().__init__(
            max_tokens,
            tokenizer_model or model.model or "gpt-4o-mini",
            counter=counter,
            max_tool_result_tokens=max_tool_result_tokens,
            storage=storage,
            storage_ttl=storage_ttl,
            cache_size=cache_size,
        )
        if not 0 < keep_ratio < 1:
            raise ConfigurationError(f"keep_ratio must be between 0 and 1 (exclusive), got {keep_ratio}")
        self.summarizer = model
        self.keep_ratio = keep_ratio
        self.instructions = instructions
        self.lease_ttl = lease_ttl
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.usage = TokenUsage()
        """Tokens and requests spent on summaries by this memory."""
        self.summarizations = 0
        """Summaries this memory requested from its model (cached and shared ones not counted)."""
        self._owner = f"summary-memory-{uuid.uuid4().hex}"
        self._seed = hashlib.sha256(instructions.encode()).digest()
        self._digest_key = functools.lru_cache(maxsize=cache_size)(self._digest_uncached)
        self._summaries: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._flights: dict[str, _Flight] = {}

    async def prepare(self, messages: Sequence[Message]) -> list[Message]:
        """The window of `messages`: system messages, the summary of old turns if needed, the newest units.

        Raises:
            SummarizationError: the summary could not be produced; nothing was changed.
        """
        system, rest = _split_system(messages)
        budget = self.max_tokens - self.count_messages(system)
        start, window = await self._fit(rest, budget)
        if start == 0:
            return [*system, *window]
        covered, summary = self._best_summary(rest)
        boundary, _ = await self._fit(rest, int(budget * self.keep_ratio))
        if summary is not None:
            note = self._summary_message(summary)
            start, window = await self._fit(rest[covered:], budget - self.count(note))
            # Re-summarize only on overflow, and only if it covers more turns than the summary has.
            if start == 0 or boundary <= covered:
                return [*system, note, *window]
        text = await self._summarize_once(rest, covered, summary, boundary, budget - int(budget * self.keep_ratio))
        note = self._summary_message(text)
        _, window = await self._fit(rest[boundary:], budget - self.count(note))
        return [*system, note, *window]

    @staticmethod
    def _summary_message(text: str) -> Message:
        return memory_message(SUMMARY_HEADER, text)

    # --- the summary cache -----------------------------------------------------------

    def _digest_uncached(self, key: _MessageKey) -> bytes:
        role, content, tool_calls, tool_call_id, name = key
        parts = content if not isinstance(content, tuple) else [part.model_dump() for part in content]
        calls = [[call.id, call.name, call.arguments] for call in tool_calls]
        canonical = json.dumps([role.value, parts, calls, tool_call_id, name], ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).digest()

    def _prefix_digests(self, messages: Sequence[Message], lengths: set[int]) -> dict[int, str]:
        """Digest of `messages[:n]` for every n in `lengths` (one pass)."""
        chain = hashlib.sha256(self._seed)
        found: dict[int, str] = {}
        for position in range(max(lengths, default=0) + 1):
            if position in lengths:
                found[position] = chain.hexdigest()
            if position < len(messages):
                chain.update(self._digest_key(_message_key(messages[position])))
        return found

    def _best_summary(self, messages: Sequence[Message]) -> tuple[int, str | None]:
        """The cached summary covering the longest prefix of `messages`: (covered count, text)."""
        lengths = {covered for covered, _ in self._summaries.values() if covered <= len(messages)}
        best: tuple[int, str | None] = (0, None)
        for covered, digest in self._prefix_digests(messages, lengths).items():
            entry = self._summaries.get(digest)
            if entry is not None and entry[0] == covered and covered > best[0]:
                best = (covered, entry[1])
        return best

    def _remember(self, digest: str, covered: int, text: str) -> None:
        self._summaries[digest] = (covered, text)
        if len(self._summaries) > 256:
            self._summaries.popitem(last=False)

    # --- single flight -----------------------------------------------------------------

    async def _summarize_once(
        self, messages: Sequence[Message], covered: int, previous: str | None, boundary: int, room: int
    ) -> str:
        digest = self._prefix_digests(messages, {boundary})[boundary]
        while True:
            entry = self._summaries.get(digest)
            if entry is not None:
                return entry[1]
            flight = self._flights.get(digest)
            if flight is None:
                break
            await flight.done.wait()
            if flight.error is not None:
                raise SummarizationError(str(flight.error)) from flight.error
            # Otherwise it succeeded (cached now) or its caller was cancelled: look again.
        flight = self._flights[digest] = _Flight()
        try:
            text = self._within(await self._produce(digest, messages[covered:boundary], previous), room)
        except SummarizationError as exc:
            flight.error = exc
            raise
        except UsageLimitExceeded:
            # The caller's budget, not the summary's failure: the waiting callers look again, as after a cancellation.
            raise
        except Exception as exc:
            flight.error = SummarizationError(
                f"the summarizer failed ({type(exc).__name__}: {exc}); memory is unchanged"
            )
            raise flight.error from exc
        finally:
            del self._flights[digest]
            flight.done.set()
        self._remember(digest, boundary, text)
        return text

    async def _produce(self, digest: str, turns: Sequence[Message], previous: str | None) -> str:
        storage = self.storage
        if storage is None:
            return await self._request_summary(turns, previous)
        record = _SUMMARY_KEY.format(digest=digest)
        found = await self._stored_summary(storage, record)
        if found is not None:
            return found
        if not storage.capabilities.leases:
            text = await self._request_summary(turns, previous)
            await storage.set(record, {"text": text}, ttl=self.storage_ttl)
            return text
        deadline = anyio.current_time() + self.wait_timeout
        while True:
            lease = await storage.acquire_lease(
                _SUMMARY_LEASE.format(digest=digest), owner=self._owner, ttl=self.lease_ttl
            )
            if lease is not None:
                try:
                    found = await self._stored_summary(storage, record)
                    if found is None:
                        found = await self._request_summary(turns, previous)
                        await storage.set(record, {"text": found}, ttl=self.storage_ttl, fence=lease)
                    return found
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        await storage.release_lease(lease)
            if anyio.current_time() >= deadline:
                raise SummarizationError(
                    f"waited {self.wait_timeout}s for another process to summarize; raise wait_timeout, or check "
                    "that process (its lease expires after lease_ttl)"
                )
            await anyio.sleep(self.poll_interval)
            found = await self._stored_summary(storage, record)
            if found is not None:
                return found

    @staticmethod
    async def _stored_summary(storage: Storage, record: str) -> str | None:
        value = await storage.get(record)
        if isinstance(value, dict) and isinstance(value.get("text"), str) and value["text"].strip():
            return str(value["text"])
        return None

    async def _request_summary(self, turns: Sequence[Message], previous: str | None) -> str:
        """The summarizer's summary, its request charged to the agent run it works for (`current_run_usage`)."""
        request = ModelRequest(
            messages=[Message.system(self.instructions), Message.user(self._transcript(turns, previous))],
            tool_choice="none",
        )
        run = current_run_usage()
        if run is not None:
            run.check()
        self.summarizations += 1
        response = await self.summarizer.complete(request)
        self.usage += response.usage
        if run is not None:
            run.add(response.usage)
        text = response.message.text.strip()
        if not text:
            raise SummarizationError("the summarizer returned an empty summary; check the model and the instructions")
        return text

    def _within(self, text: str, room: int) -> str:
        """`text`, or its start marked `[...]`, whose summary message takes at most `room` tokens.

        Raises:
            SummarizationError: not even the marker fits (the system messages take the budget).
        """
        tokens = self.count(self._summary_message(text))
        kept, cut = len(text), text
        while tokens > room:
            if kept == 0:
                raise SummarizationError(
                    f"no summary fits in {max(room, 0)} tokens, what the system messages leave of "
                    f"max_tokens={self.max_tokens}"
                )
            kept = max(min(kept - 1, kept * room // tokens), 0)
            cut = text[:kept].rstrip() + " [...]"
            tokens = self.count(self._summary_message(cut))
        return cut

    def _transcript(self, turns: Sequence[Message], previous: str | None) -> str:
        limit = self.max_tool_result_tokens * 4  # about that many tokens of English text
        lines = [f"Earlier summary: {previous}"] if previous else []
        for message in turns:
            text = message.text
            if len(text) > limit:
                text = text[:limit] + " [...]"
            calls = "".join(f" [calls {call.name}({call.arguments[:limit]})]" for call in message.tool_calls)
            lines.append(f"{message.role.value}: {text}{calls}")
        return "\n".join(lines)
