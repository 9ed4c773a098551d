"""`Agent`: a model, tools, a prompt and a memory, run by the ReAct engine, with optional sessions.

A session id keeps the conversation in a storage (any URL: `memory://`, `sqlite:///...`,
`redis://...`) under the key `gecko:agent:<session id>`, as JSON. A run that pauses for tool
approvals is saved the same way, so `resume` works from another process when the storage is
shared; without a storage the agent keeps sessions in an in-process `memory://` store. A saved
session is sealed and validated like a workflow checkpoint (`gecko.core._stored`), so edited
approvals or a malformed document are a `CorruptCheckpointError`, never a run on changed data.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio

from gecko.core.toolbox import DEFAULT_MAX_TOOL_CALLS_PER_TURN, Tool, ToolBox, ToolSource
from gecko.errors import ApprovalError, ConfigurationError
from gecko.plugins import aplugin_manager, plugins_loaded
from gecko.plugins.storage import Storage

if TYPE_CHECKING:
    # The engine, its events and state, and the pydantic types behind them load when the first
    # agent is built (`__init__`), so `from gecko import Agent` stays light.
    from gecko.core.engine import Memory, ReActEngine
    from gecko.core.events import EventBus, StreamEvent
    from gecko.core.state import PausedOutput, PendingApproval, RunState, UsageLimits
    from gecko.core.structure import StructureEngine
    from gecko.plugins.models import ChatModel
    from gecko.types import AgentOutput

__all__ = ("Agent", "PausedOutput", "PendingApproval", "StrategyChoice", "UsageLimits", "session_key")

SESSION_KEY_PREFIX = "gecko:agent:"

StrategyChoice = Literal["auto", "grammar", "native", "json_object", "tool", "prompted"]
"""How structured output is obtained: chosen from the model's capabilities, or one forced strategy."""


def session_key(session_id: str) -> str:
    """The storage key holding a session's conversation."""
    return SESSION_KEY_PREFIX + session_id


class Agent:
    """Answers inputs with a model that may call tools; build one with `AgentBuilder`.

    Args:
        model: the chat model.
        tools: `Tool`s, plain functions or `ToolSource`s (MCP servers: connected at the first run,
            closed by `aclose`), or a ready `ToolBox`.
        system_prompt: the first message of every request.
        memory: chooses the window of the conversation sent to the model (e.g. `TokenMemory`).
        output_type: a pydantic model the final answer is parsed into (`AgentOutput.data`).
        structure_strategy: `"auto"`, or one of `"grammar"`, `"native"`, `"json_object"`, `"tool"`, `"prompted"`.
        structure_retries: re-asks per structured-output strategy.
        structure_lax: let pydantic coerce the answer's types (`"0.9"` to 0.9); strict when False.
        session_id: default session of `run`/`stream`; each call may pass another.
        storage: where sessions live: a `Storage` or a storage URL (opened on first use and
            closed by `aclose`); an in-process `memory://` store when None.
        checkpoint_key: seals saved sessions with HMAC-SHA256 under this key (at least 16 bytes);
            None reads `GECKO_CHECKPOINT_KEY`, and without either a SHA-256 digest is used.
        max_turns, max_repeated_tool_calls, max_tool_retries, max_tool_calls_per_turn, usage_limits:
            see `ReActEngine`.
        event_bus: subscribers and middleware; a private bus when None.
        name: the `source` of this agent's events and hook calls.
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        tools: ToolBox | Iterable[Tool | ToolSource | Callable[..., Any]] = (),
        system_prompt: str | None = None,
        memory: Memory | None = None,
        output_type: type[Any] | None = None,
        structure_strategy: StrategyChoice = "auto",
        structure_retries: int = 2,
        structure_lax: bool = False,
        session_id: str | None = None,
        storage: Storage | str | None = None,
        checkpoint_key: bytes | str | None = None,
        max_turns: int = 10,
        max_repeated_tool_calls: int = 3,
        max_tool_retries: int = 2,
        max_tool_calls_per_turn: int = DEFAULT_MAX_TOOL_CALLS_PER_TURN,
        usage_limits: UsageLimits | None = None,
        event_bus: EventBus | None = None,
        name: str = "agent",
    ) -> None:
        from gecko.core._stored import Sealer, resolve_checkpoint_key
        from gecko.core.engine import ReActEngine
        from gecko.core.state import PausedOutput
        from gecko.plugins.models import ChatModel

        if not isinstance(model, ChatModel):
            raise ConfigurationError(
                f"model must be a ChatModel, got {type(model).__name__}; use create_model('provider:model')"
            )
        toolbox = tools if isinstance(tools, ToolBox) else ToolBox(tools)
        self._engine = ReActEngine(
            model,
            toolbox,
            name=name,
            system_prompt=system_prompt,
            memory=memory,
            max_turns=max_turns,
            max_repeated_tool_calls=max_repeated_tool_calls,
            max_tool_retries=max_tool_retries,
            max_tool_calls_per_turn=max_tool_calls_per_turn,
            usage_limits=usage_limits,
            bus=event_bus,
        )
        self.output_type = output_type
        self.structure_strategy = structure_strategy
        self.structure_retries = structure_retries
        self.structure_lax = structure_lax
        self.session_id = session_id
        self._storage_spec = storage
        self._storage: Storage | None = storage if isinstance(storage, Storage) else None
        self._owns_storage = False
        self._storage_lock: anyio.Lock | None = None
        self._sealer = Sealer(resolve_checkpoint_key(checkpoint_key))
        self._structures: dict[type[Any], StructureEngine[Any]] = {}
        # Held here so a run's end needs no import to tell a paused output.
        self._paused_output = PausedOutput

    # --- configuration -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The agent's name (the `source` of its events)."""
        return self._engine.name

    @property
    def model(self) -> ChatModel:
        """The chat model."""
        return self._engine.model

    @property
    def toolbox(self) -> ToolBox:
        """The tools the model may call."""
        return self._engine.toolbox

    @property
    def events(self) -> EventBus:
        """The bus this agent publishes on; subscribe or add middleware here."""
        return self._engine.bus

    @property
    def engine(self) -> ReActEngine:
        """The ReAct engine running this agent."""
        return self._engine

    # --- running -------------------------------------------------------------------------

    async def run(
        self,
        input: Any,
        *,
        session_id: str | None = None,
        output_type: type[Any] | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AgentOutput:
        """Answer `input` (text, a `Message`, or a list of messages).

        Returns the `AgentOutput` (`data` holds the parsed `output_type`), or a `PausedOutput`
        when a tool needs approval: pass its `session_id` to `resume`.

        Raises:
            MaxTurnsExceeded, ToolLoopDetected, UsageLimitExceeded, StructuredOutputError,
            UnknownToolError, ToolArgumentsError, ModelOutputError: see `ReActEngine`.
            ApprovalError: the session waits for approvals; call `resume` first.
        """
        if session_id is None and self.session_id is None:
            # No session to read or write: the run starts from `input` alone (what `_start` would build).
            engine = self._engine
            if not plugins_loaded() or engine.toolbox.needs_open():
                await self._ready()
            wanted = output_type or self.output_type
            structure = None if wanted is None else self._structure(wanted)
            state = engine.new_state(input)
            output = await engine.run(state, structure=structure, usage_limits=usage_limits)
            # The engine pauses with exactly this class: no model-class `isinstance` (an ABC check).
            if type(output) is self._paused_output:
                await self._save(_Start(state, None, None, None, None, 0), output)
            return output
        return await self._run(input, session_id, output_type, usage_limits, approvals=None)

    def stream(
        self,
        input: Any,
        *,
        session_id: str | None = None,
        output_type: type[Any] | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Answer `input`, yielding `TextDelta`, `ToolStarted`, `ToolFinished` and finally `FinalOutput`.

        The `FinalOutput` carries the same output `run` returns. Leaving the loop early or
        cancelling stops the run; nothing keeps running in the background.
        """
        return self._events(input, session_id, output_type, usage_limits, stream=True, approvals=None)

    async def resume(
        self,
        approvals: Mapping[str, bool],
        *,
        session_id: str,
        output_type: type[Any] | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AgentOutput:
        """Continue a run paused for approvals: `approvals` maps every pending call id to approve (True) or reject.

        Approved calls run; rejected calls are reported to the model as rejected.

        Raises:
            ApprovalError: nothing is pending in the session, or `approvals` does not cover exactly
                the pending calls.
        """
        return await self._run(None, session_id, output_type, usage_limits, approvals=approvals)

    async def _run(
        self,
        input: Any,
        session_id: str | None,
        output_type: type[Any] | None,
        usage_limits: UsageLimits | None,
        *,
        approvals: Mapping[str, bool] | None,
    ) -> AgentOutput:
        # `run` and `resume` drive the engine's loop directly: no event generator of their own.
        start = await self._start(input, session_id, output_type, approvals)
        output = await self._engine.run(
            start.state,
            structure=start.structure,
            session_id=start.session,
            approvals=approvals,
            usage_limits=usage_limits,
        )
        await self._save(start, output)
        return output

    async def _events(
        self,
        input: Any,
        session_id: str | None,
        output_type: type[Any] | None,
        usage_limits: UsageLimits | None,
        *,
        stream: bool,
        approvals: Mapping[str, bool] | None,
    ) -> AsyncIterator[StreamEvent]:
        from gecko.core.events import FinalOutput

        start = await self._start(input, session_id, output_type, approvals)
        events = self._engine.iterate(
            start.state,
            structure=start.structure,
            stream=stream,
            session_id=start.session,
            approvals=approvals,
            usage_limits=usage_limits,
        )
        # Closing this stream closes the engine's at once (not at garbage collection), so the
        # model stream is released and observers see the run end.
        async with aclosing(events):
            async for event in events:
                if isinstance(event, FinalOutput):
                    await self._save(start, event.output)
                yield event

    async def discard(self, session_id: str) -> None:
        """Drop the run `session_id` waits on for approvals, as if it had been cancelled.

        No pending call runs; the session goes back to the conversation and the plugins' data
        (`RunState.plugin_state`) it held before that run, and is deleted when that run began it.
        A RACE team discards its paused losers this way.

        Raises:
            ApprovalError: nothing is pending in the session, or an earlier Gecko paused it without
                recording where the run began (resume it instead).
        """
        storage, key, document, version = await self._load(session_id)
        if document is None or not document["pending"]:
            raise ApprovalError(f"session {session_id!r} has no run waiting for approvals")
        before = document.get("before")
        if before is None:
            raise ApprovalError(
                f"session {session_id!r} was paused by an earlier Gecko, which did not record where the run "
                "began; decide its approvals with agent.resume(...) instead"
            )
        if before == 0:
            await storage.delete(key)
            return
        from gecko.core.state import RunState

        # The plugins' data goes back with the conversation: what the run wrote goes with the messages it came from.
        paused = RunState.from_json(document["state"])
        state = RunState(messages=paused.messages[:before], plugins=document.get("plugins_before"))
        await storage.compare_and_set(key, self._seal(key, state, [], version, None), expected_version=version)

    async def _start(
        self, input: Any, session_id: str | None, output_type: type[Any] | None, approvals: Mapping[str, bool] | None
    ) -> _Start:
        """The run's state: a new conversation, or the session's history (checked for pending approvals)."""
        await self._ready()
        session = session_id or self.session_id
        structure = self._structure(output_type or self.output_type)
        if session is None:
            return _Start(self._engine.new_state(input), structure, session, None, None, 0)
        storage, _, document, version = await self._load(session)
        from gecko.core.state import RunState

        pending = [] if document is None else [approval["call_id"] for approval in document["pending"]]
        if approvals is not None:
            if not pending:
                raise ApprovalError(f"session {session!r} has no run waiting for approvals")
            missing = sorted(set(pending) - set(approvals))
            if missing:
                raise ApprovalError(
                    f"no decision for pending calls {', '.join(missing)} of session {session!r}; "
                    "pass True or False for each"
                )
            unknown = sorted(set(approvals) - set(pending))
            if unknown:
                raise ApprovalError(
                    f"approvals name calls that are not pending: {', '.join(unknown)}; pending: {', '.join(pending)}"
                )
            assert document is not None
            return _Start(
                RunState.from_json(document["state"]),
                structure,
                session,
                storage,
                version,
                document.get("before"),
                document.get("plugins_before"),
            )
        if pending:
            raise ApprovalError(
                f"session {session!r} waits for approval of calls {', '.join(pending)}; "
                "call agent.resume(approvals, session_id=...) first"
            )
        if document is None:
            return _Start(self._engine.new_state(input), structure, session, storage, version, 0)
        # The session's conversation and the data plugins keep with it (`RunState.plugin_state`), and a copy
        # of that data as it was (plugins change it in place) for a paused run's `discard`.
        previous = RunState.from_json(document["state"])
        state = self._engine.new_state(input, previous.messages)
        state.plugins = previous.plugins
        plugins_before = document["state"].get("plugins")
        if plugins_before:
            plugins_before = json.loads(json.dumps(plugins_before))
        return _Start(state, structure, session, storage, version, len(previous.messages), plugins_before)

    async def _ready(self) -> None:
        """Load the hook plugins (off the event loop) and connect the tool sources, before the engine reads them."""
        await aplugin_manager()
        await self._engine.toolbox.open()

    async def _load(self, session: str) -> tuple[Storage, str, dict[str, Any] | None, int | None]:
        """The session's storage, key, validated document (None when there is none) and version."""
        storage = await self._open_storage()
        key = session_key(session)
        from gecko.core._stored import StoredAgentSession, open_stored

        saved = await storage.get_versioned(key)
        if saved is None:
            return storage, key, None, None
        what = f"stored session {session!r} (key {key!r})"
        document = open_stored(
            self._sealer, StoredAgentSession, saved.value, where=key, version=saved.version, what=what
        )
        return storage, key, document, saved.version

    async def _save(self, start: _Start, output: AgentOutput) -> None:
        """Store the session's conversation, or the paused run, after the final event."""
        storage, session, version = start.storage, start.session, start.version
        if isinstance(output, self._paused_output):
            if storage is None:
                storage = await self._open_storage()
            key = session_key(output.session_id)
            document = self._seal(
                key, start.state, output.pending_approvals, version, start.before, start.plugins_before
            )
            await storage.compare_and_set(key, document, expected_version=version)
        elif storage is not None and session is not None:
            key = session_key(session)
            await storage.compare_and_set(
                key, self._seal(key, start.state, [], version, None), expected_version=version
            )

    def _seal(
        self,
        key: str,
        state: RunState,
        pending: list[PendingApproval],
        version: int | None,
        before: int | None,
        plugins_before: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "state": state.to_json(),
            "pending": [approval.model_dump(mode="json") for approval in pending],
        }
        if before is not None:
            document["before"] = before
        if plugins_before:
            document["plugins_before"] = plugins_before
        # Versions grow by one per write: the version this write creates is bound into the seal.
        return self._sealer.seal(document, where=key, version=(version or 0) + 1)

    def _structure(self, output_type: type[Any] | None) -> StructureEngine[Any] | None:
        if output_type is None:
            return None
        found = self._structures.get(output_type)
        if found is None:
            from gecko.core.structure import StructureEngine

            found = StructureEngine(
                output_type,
                strategy=self.structure_strategy,
                max_retries=self.structure_retries,
                lax=self.structure_lax,
            )
            self._structures[output_type] = found
        return found

    # --- storage -------------------------------------------------------------------------

    async def _open_storage(self) -> Storage:
        if self._storage is not None:
            return self._storage
        if self._storage_lock is None:
            self._storage_lock = anyio.Lock()
        async with self._storage_lock:
            if self._storage is None:
                spec = self._storage_spec
                if isinstance(spec, str):
                    from gecko.plugins.storage.factory import create_storage

                    self._storage = await create_storage(spec, kind="kv")
                    self._owns_storage = True
                else:
                    from gecko.plugins.storage.memory import MemoryStorage

                    self._storage = MemoryStorage()
            return self._storage

    async def aclose(self) -> None:
        """Close the tool sources and the storage this agent opened from a URL; a storage passed in stays open."""
        await self._engine.toolbox.aclose()
        storage, self._storage = self._storage, None
        if storage is not None and self._owns_storage:
            self._owns_storage = False
            await storage.close()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, model={self.model.model!r}, tools={list(self.toolbox.names)!r})"


@dataclass(slots=True)
class _Start:
    """What one run starts from, and where its session is saved afterwards."""

    state: RunState
    structure: StructureEngine[Any] | None
    session: str | None
    storage: Storage | None
    version: int | None
    before: int | None
    """How many messages the session held before the run (what `discard` goes back to); None if unknown."""
    plugins_before: dict[str, Any] | None = None
    """The plugins' data the session held before the run (what `discard` goes back to), as JSON data."""


_STATE_EXPORTS = frozenset({"PausedOutput", "PendingApproval", "UsageLimits"})


def __getattr__(name: str) -> Any:
    # Re-exported from `gecko.core.state` on first access, so importing `Agent` loads no pydantic model.
    if name in _STATE_EXPORTS:
        from gecko.core import state

        value = getattr(state, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
