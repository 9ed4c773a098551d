"""The state of one agent run and its limits: what a paused run saves, what a budget checks.

`RunState` is the conversation (without the system prompt), the usage and the counters of one
run; it round-trips through JSON so a paused run resumes in another process. `UsageLimits` is a
run's request and token budget. A run paused for approvals ends with a `PausedOutput` listing
its `PendingApproval`s. `current_run_usage` gives code working for the current run (a plugin's
own model calls, such as a judge's) the `RunUsage` to charge what it spends to.
"""

from __future__ import annotations

import json
import os
import random
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gecko.errors import CorruptCheckpointError, UnstorableValueError, UsageLimitExceeded
from gecko.types import AgentOutput, FinishReason, JSONValue, Message, TokenUsage

__all__ = ("PausedOutput", "PendingApproval", "RunState", "RunUsage", "UsageLimits", "current_run_usage")

# Run ids name paused sessions in shared storages, so they must not repeat across processes: a
# private generator seeded from the OS (untouched by `random.seed`), reseeded in forked children.
# They are not secrets; one system call per run cost more than the rest of building the state.
_run_ids = random.Random()
os.register_at_fork(after_in_child=_run_ids.seed)


def _new_run_id() -> str:
    # 16 hex digits, as f"{n:016x}" would give, for half its cost.
    return _run_ids.getrandbits(64).to_bytes(8, "big").hex()


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """A run's budget, checked before every model request; `None` means unlimited.

    Token limits compare what was already spent (the next request's size is unknown before
    it is sent): a run stops before the request that would start past the budget. What is
    spent counts the run's own requests and those charged to it (`RunUsage.add`).
    """

    max_requests: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_total_tokens: int | None = None

    def check(self, state: RunState) -> None:
        """Raise `UsageLimitExceeded` if one more request would break the budget."""
        if self.max_requests is not None and state.requests >= self.max_requests:
            raise UsageLimitExceeded(
                f"the next model request would exceed max_requests={self.max_requests}; "
                "raise UsageLimits.max_requests or give the agent a smaller task"
            )
        for name, limit, spent in (
            ("max_input_tokens", self.max_input_tokens, state.input_tokens),
            ("max_output_tokens", self.max_output_tokens, state.output_tokens),
            ("max_total_tokens", self.max_total_tokens, state.total_tokens),
        ):
            if limit is not None and spent >= limit:
                raise UsageLimitExceeded(
                    f"{spent} tokens spent reach {name}={limit} before the next model request; "
                    f"raise UsageLimits.{name} or shorten the conversation"
                )


class PendingApproval(BaseModel):
    """A tool call waiting for the caller's decision."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    reason: str | None = None
    """Why a guardrail holds the call (`ApprovalRequired`); `None` for a tool that always needs approval."""


class PausedOutput(AgentOutput):
    """A run paused on tools that need approval; resume it with `agent.resume(approvals, session_id=...)`."""

    session_id: str
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    finish_reason: FinishReason = "tool_calls"


class RunState:
    """The progress of one run: conversation (without the system prompt), usage, counters and
    the data plugins keep with it (`plugin_state`).

    JSON round-trips (`to_json` / `from_json`), so a paused run resumes in another process.
    """

    __slots__ = (
        "_last_usage",
        "_run_id",
        "call_counts",
        "input_tokens",
        "invalid_turns",
        "messages",
        "output_tokens",
        "plugins",
        "requests",
        "total_tokens",
        "turns",
    )

    def __init__(
        self,
        messages: list[Message],
        run_id: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        total_tokens: int = 0,
        requests: int = 0,
        turns: int = 0,
        invalid_turns: int = 0,
        call_counts: dict[str, int] | None = None,
        plugins: dict[str, dict[str, JSONValue]] | None = None,
    ) -> None:
        self.messages = messages
        self._run_id = run_id
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.total_tokens = total_tokens
        self.requests = requests
        self.turns = turns
        self.invalid_turns = invalid_turns
        self.call_counts: dict[str, int] = {} if call_counts is None else call_counts
        self.plugins: dict[str, dict[str, JSONValue]] = {} if plugins is None else plugins
        """Each plugin's data by its namespace (`plugin_state`); an agent's session carries it to its next run."""
        self._last_usage: TokenUsage | None = None

    @property
    def run_id(self) -> str:
        """The run's id, drawn when first read (a run nothing observes never needs one)."""
        run_id = self._run_id
        if run_id is None:
            run_id = self._run_id = _new_run_id()
        return run_id

    def __repr__(self) -> str:
        return f"RunState(run_id={self._run_id!r}, messages={len(self.messages)}, requests={self.requests})"

    def usage(self) -> TokenUsage:
        """What the run spent so far."""
        last = self._last_usage
        if (
            last is not None
            and last.requests == self.requests
            and last.input_tokens == self.input_tokens
            and last.output_tokens == self.output_tokens
            and last.total_tokens == self.total_tokens
        ):
            # A one-request run spent exactly its reply's (frozen) usage.
            return last
        return TokenUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.total_tokens,
            requests=self.requests,
        )

    def add_usage(self, usage: TokenUsage) -> None:
        """Count one request and add its provider-reported tokens (a count below zero as none, a total below
        the input and output tokens as their sum)."""
        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        if input_tokens < 0 or output_tokens < 0 or usage.total_tokens < input_tokens + output_tokens:
            # Either would keep the run under its budget, and a stored session holds no count below zero.
            input_tokens, output_tokens = max(0, input_tokens), max(0, output_tokens)
            usage = TokenUsage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=max(usage.total_tokens, input_tokens + output_tokens),
                requests=usage.requests,
            )
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.total_tokens += usage.total_tokens
        self.requests += 1
        self._last_usage = usage

    def plugin_state(self, namespace: str) -> dict[str, JSONValue]:
        """The data a plugin keeps with this run under `namespace` (its name), to read and change in place.

        JSON data only (string keys, at most 100 levels deep; never pickled): saved with the run (`to_json`:
        a paused run, an agent's session) and, in an agent's session, carried to its later runs.
        """
        found = self.plugins.get(namespace)
        if found is None:
            found = self.plugins[namespace] = {}
        return found

    def to_json(self) -> dict[str, JSONValue]:
        """The state as JSON data.

        Raises:
            UnstorableValueError: a plugin's data (`plugin_state`) is not JSON data.
        """
        data: dict[str, JSONValue] = {
            "messages": [message.model_dump(mode="json") for message in self.messages],
            "run_id": self.run_id,
            "usage": [self.input_tokens, self.output_tokens, self.total_tokens, self.requests],
            "turns": self.turns,
            "invalid_turns": self.invalid_turns,
            "call_counts": dict(self.call_counts),
        }
        kept = {namespace: found for namespace, found in self.plugins.items() if found}
        if kept:
            data["plugins"] = _plugin_data(kept)
        return data

    @classmethod
    def from_json(cls, data: Any) -> RunState:
        """Rebuild a state saved by `to_json`; anything else is a `CorruptCheckpointError`."""
        try:
            input_tokens, output_tokens, total_tokens, requests = (int(n) for n in data["usage"])
            return cls(
                messages=[Message.model_validate(item) for item in data["messages"]],
                run_id=str(data["run_id"]),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=total_tokens,
                requests=requests,
                turns=int(data["turns"]),
                invalid_turns=int(data["invalid_turns"]),
                call_counts={str(key): int(value) for key, value in data["call_counts"].items()},
                plugins={str(key): dict(value) for key, value in data.get("plugins", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptCheckpointError(
                f"the saved agent run is not valid ({exc}); delete the session key and start a new run"
            ) from exc


# A stored record's reader takes 200 levels in all; what a run keeps in an agent's session (a plugin's data, a
# held call's arguments) sits four levels down, a value in a workflow checkpoint (`gecko.compose._values`) at
# most six, and each is held to this many.
_STORED_LEVELS = 100


def _plugin_data(kept: dict[str, dict[str, JSONValue]]) -> dict[str, JSONValue]:
    """A copy of the plugins' data through JSON text (nothing a later change reaches) that reads back as it is.

    Raises:
        UnstorableValueError: the data is not JSON data, reads back otherwise (a key that is not a string,
            a tuple) or is nested deeper than `_STORED_LEVELS` levels in its namespace.
    """
    try:
        copy: dict[str, JSONValue] = json.loads(json.dumps(kept, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        problem = str(exc)
    else:
        if _levels(copy) > _STORED_LEVELS + 1:
            problem = f"nested deeper than {_STORED_LEVELS} levels, which a stored session does not read back"
        elif copy != kept:
            problem = "a key that is not a string, or a tuple, which would read back as a string or a list"
        else:
            return copy
    raise UnstorableValueError(
        f"plugin data of namespaces {', '.join(sorted(map(str, kept)))} is not JSON data ({problem}); "
        "keep only dicts with string keys, lists, strings, numbers, booleans and None"
    )


def _levels(value: JSONValue) -> int:
    """How many dicts and lists deep `value` is (a loop, not recursion)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in item)
    return deepest


class RunUsage:
    """The usage and budget of one agent run, for code that calls a model on its behalf (`current_run_usage`).

    Such code calls `check` before each request and `add` with each reply's usage: the run counts
    the request and its tokens in its usage (and its output's), and its `UsageLimits` hold for them
    as for its own requests. The engine's run is itself a `RunUsage`.
    """

    __slots__ = ("limits", "state")

    def __init__(self, state: RunState, limits: UsageLimits | None = None) -> None:
        self.state = state
        self.limits = limits

    def usage(self) -> TokenUsage:
        """What the run spent so far, its own requests and those added here."""
        return self.state.usage()

    def check(self) -> None:
        """Raise `UsageLimitExceeded` if one more request would break the run's budget."""
        if self.limits is not None:
            self.limits.check(self.state)

    def add(self, usage: TokenUsage) -> None:
        """Count one request made for the run and its provider-reported tokens."""
        self.state.add_usage(usage)


# Set by the engine for the steps of a run; every task copies its spawner's context, so tool calls and hooks
# running concurrently within a run see that run, and concurrent runs each see their own (asyncio and trio alike).
_current_run: ContextVar[RunUsage | None] = ContextVar("gecko_current_run", default=None)


def current_run_usage() -> RunUsage | None:
    """The `RunUsage` of the agent run the calling task works in (the innermost when runs nest); None outside one."""
    return _current_run.get()
