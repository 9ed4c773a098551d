"""Teams: several members work on one input at once; every member (ALL) or the first success (RACE)."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import anyio

from gecko._checks import at_least, positive_seconds
from gecko.core._sanitize import text_of
from gecko.errors import ConfigurationError, TeamError, TeamMemberCancelled, TeamTimeoutError
from gecko.plugins import PluginManager, aplugin_manager

if TYPE_CHECKING:
    from gecko.types import TokenUsage

if TYPE_CHECKING:
    from gecko.plugins.executors import Executor

__all__ = ("ExecutionStrategy", "MemberStatus", "MemberResult", "Team")

InputMapper = Callable[[Any, int], Any]
"""`input_mapper(raw_input, member_index)` returns (or, async, resolves to) the input of one member."""

_MemberCall = Callable[[int], Awaitable[Any]]
"""What one member does in a team run, given its index: its first run, or the resume of its paused run."""

# Seconds a RACE loser's paused run may take to be discarded (shielded from cancellation).
_DISCARD_BOUND_S = 10.0


class ExecutionStrategy(str, Enum):
    """How a team runs its members."""

    ALL = "all"
    """Every member runs to completion (at most `max_concurrent` at once)."""
    RACE = "race"
    """The first member to finish with a result wins; the others are cancelled (see `Team`)."""


class MemberStatus(str, Enum):
    """How a member's run ended."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberResult:
    """The outcome of one member of a team run.

    Attributes:
        result: What the member returned (None unless `status` is OK).
        error: Why it did not succeed: the member's exception, `TeamTimeoutError` or `TeamMemberCancelled`.
        member_index: Position of the member in the team.
        status: ok, error, timeout or cancelled.
        latency: Seconds from the member's start to its end (0 if it never started).
        usage: Tokens spent, when the result carries a `usage` (an agent's `AgentOutput`).
    """

    result: Any = None
    error: Exception | None = None
    member_index: int
    status: MemberStatus
    latency: float = 0.0
    usage: TokenUsage | None = None

    @property
    def is_success(self) -> bool:
        """Whether the member returned a result that counts."""
        return self.status is MemberStatus.OK

    @property
    def value(self) -> Any:
        """The member's result.

        Raises:
            TeamError: the member did not succeed; the member's error is the cause.
        """
        if self.status is not MemberStatus.OK:
            reason = text_of(self.error) if self.error is not None else None
            raise TeamError(f"team member {self.member_index} ended with {self.status.value}: {reason}") from self.error
        return self.result


def _entry_point(member: object, index: int) -> tuple[Callable[[Any], Any], bool]:
    """The callable to run for `member` and whether it is async.

    Agents and teams expose `run(input)`, workflows `execute(input)`; anything else callable is
    called with the input.
    """
    for name in ("run", "execute"):
        method = getattr(member, name, None)
        if callable(method):
            break
    else:
        if not callable(member):
            raise ConfigurationError(
                f"team member {index} ({type(member).__name__}) is not runnable: give it an async "
                "`run(input)` method, or pass a function of one argument"
            )
        method = member
    # A callable object with `async def __call__` is async too.
    is_async = inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(type(method).__call__)
    return method, is_async


class _Race:
    """The shared state of one RACE run.

    A member that pauses for tool approvals has not finished: it waits here while others run. A
    winner cancels it with the rest; once no member is left running, the race is decided without
    a winner and the paused members keep their paused results.
    """

    __slots__ = ("decided", "running", "scope", "winner")

    def __init__(self, scope: anyio.CancelScope, running: int) -> None:
        self.scope = scope
        self.winner: int | None = None
        self.running = running
        self.decided = anyio.Event()

    def ended(self) -> None:
        """One member stopped running without winning: it failed, timed out or paused."""
        self.running -= 1
        if self.running == 0:
            self.decided.set()


@dataclass(slots=True)
class _Members:
    """What the members of one team run share: outcomes, start times, the limiter, the deadline, the race."""

    outcomes: list[MemberResult | None]
    started: list[float | None]
    limiter: anyio.Semaphore | None
    deadline: float | None
    race: _Race | None = None


@dataclass(frozen=True, slots=True)
class _Observers:
    """Who watches one team run: `gecko_event` observers, operation observers, or both."""

    manager: PluginManager
    events: bool
    trace: bool
    run_id: str

    async def publish(self, team: str, kind: str, data: dict[str, Any]) -> None:
        if self.events:
            from gecko.types import Event  # pydantic loads on the first observed run, not at import

            with anyio.CancelScope(shield=True):
                await self.manager.event(Event(kind, team, self.run_id, data))


async def _observers() -> _Observers | None:
    manager = await aplugin_manager()  # hook plugins load off the event loop
    events, trace = manager.has_implementations("gecko_event"), manager.traces
    if not (events or trace):
        return None
    return _Observers(manager, events, trace, os.urandom(8).hex())


_MEMBER_EVENTS = {
    MemberStatus.OK: "team.member.finished",
    MemberStatus.ERROR: "team.member.failed",
    MemberStatus.TIMEOUT: "team.member.cancelled",
    MemberStatus.CANCELLED: "team.member.cancelled",
}


class Team:
    """Members (agents, workflows, teams, sync or async callables) run concurrently on one input.

    With `ExecutionStrategy.ALL`, `run` returns one `MemberResult` per member, in member order;
    a failing member is reported in its result, never raised. With `RACE`, the first member to
    finish with a result wins: the others are cancelled and awaited before `run` returns, which
    lists the winner first and then every other member (as error or cancelled); when no member
    succeeds, every member's result comes back, in member order.

    A member that pauses for tool approvals (an agent returning a `PausedOutput`) has not
    finished. Under RACE it waits while the others run: if one of them finishes, it wins and the
    paused run is discarded (`Agent.discard`; the member is reported cancelled), so no approval is
    left waiting; if none does, the paused members keep their `PausedOutput` (status ok) and the
    team pauses: as a workflow node it pauses the workflow, and the resume races the resumed members.

    Sync callables run in worker threads. A thread cannot be interrupted: a cancelled or timed-out
    sync member is awaited until its function returns, so nothing outlives `run`.

    Args:
        members: What runs; see above.
        name: Names the team (a workflow node name, logs).
        strategy: ALL or RACE.
        max_concurrent: At most this many members run at once; None for no limit.
        input_mapper: `input_mapper(raw_input, member_index)`, sync or async, gives each member its own input
            (sharding); members get the raw input when None. An error in it fails that member only.
        executor: Runs every member elsewhere (a Dask cluster: `gecko-ai-executor-dask`); members are
            then module-level functions or import paths (`"package.module:agent"`) that the workers
            load, and inputs and results are JSON (see `gecko.compose.remote`). In this process when None.
    """

    def __init__(
        self,
        members: Sequence[object],
        *,
        name: str = "team",
        strategy: ExecutionStrategy = ExecutionStrategy.ALL,
        max_concurrent: int | None = None,
        input_mapper: InputMapper | None = None,
        executor: Executor | None = None,
    ) -> None:
        if not members:
            raise ConfigurationError("a team needs at least one member")
        if max_concurrent is not None:
            at_least(max_concurrent, 1, "max_concurrent (or None for no limit)")
        try:
            self.strategy = ExecutionStrategy(strategy)
        except ValueError:
            choices = ", ".join(repr(choice.value) for choice in ExecutionStrategy)
            raise ConfigurationError(f"strategy must be one of {choices}, got {strategy!r}") from None
        self.members = list(members)
        self.name = name
        self.max_concurrent = max_concurrent
        self.input_mapper = input_mapper
        self.executor = executor
        if executor is None:
            self._entries = [_entry_point(member, index) for index, member in enumerate(self.members)]
        else:
            from gecko.compose.remote import RemoteMember

            self._entries = [(RemoteMember(executor, member, index), True) for index, member in enumerate(self.members)]

    def __repr__(self) -> str:
        return f"Team({self.name!r}, {len(self.members)} members, {self.strategy.value})"

    async def run(self, input: Any, *, timeout: float | None = None) -> list[MemberResult]:  # noqa: ASYNC109 - a team-wide deadline is the API
        """Run the members on `input` and report every outcome.

        Args:
            input: Given to every member, or to `input_mapper`.
            timeout: Seconds for the whole team; members still running then are cancelled and
                reported with status timeout, finished ones keep their results.

        Raises:
            ConfigurationError: `timeout` is not a positive number of seconds (zero, negative, NaN).
        """
        timeout = positive_seconds(timeout, "timeout")
        call = functools.partial(self._first_run, input)
        return await self._observed(input, call, range(len(self.members)), [None] * len(self.members), timeout)

    async def _resume_members(
        self, results: list[MemberResult], decisions: dict[int, dict[str, bool]]
    ) -> list[MemberResult]:
        """`results` with each paused member (a key of `decisions`) resumed with its decisions.

        A workflow calls this when it resumes a team node paused for tool approvals
        (`gecko.compose._approvals`). The resumed members run as in `run` (same strategy, events and
        operations); the others keep their results. A resumed member that pauses again is reported
        paused again, or discarded when a RACE is won meanwhile.
        """
        outcomes: list[MemberResult | None] = [None] * len(self.members)
        for result in results:
            outcomes[result.member_index] = None if result.member_index in decisions else result

        def resume(index: int) -> Any:
            paused = next(result for result in results if result.member_index == index)
            return self.members[index].resume(decisions[index], session_id=paused.result.session_id)  # type: ignore[attr-defined]

        return await self._observed(decisions, resume, sorted(decisions), outcomes, None)

    async def _observed(
        self,
        input: Any,
        call: _MemberCall,
        indexes: Iterable[int],
        outcomes: list[MemberResult | None],
        timeout: float | None,  # noqa: ASYNC109
    ) -> list[MemberResult]:
        """Run `call(index)` for each of `indexes`, announced to the observers (events, operations) if any."""
        observers = await _observers()
        if observers is None:
            return (await self._run(call, indexes, outcomes, timeout, None))[0]
        strategy = self.strategy.value
        await observers.publish(self.name, "team.started", {"strategy": strategy, "members": len(self.members)})
        try:
            if observers.trace:
                async with observers.manager.operation(
                    "team.run", self.name, input=input, attributes={"strategy": strategy, "run_id": observers.run_id}
                ) as operation:
                    results, winner = await self._run(call, indexes, outcomes, timeout, observers)
                    operation.output = results
            else:
                results, winner = await self._run(call, indexes, outcomes, timeout, observers)
        except BaseException as exc:
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            await observers.publish(self.name, "team.cancelled" if cancelled else "team.failed", {"error": repr(exc)})
            raise
        statuses = {str(result.member_index): result.status.value for result in results}
        await observers.publish(self.name, "team.finished", {"statuses": statuses, "winner": winner})
        return results

    async def _run(
        self,
        call: _MemberCall,
        indexes: Iterable[int],
        outcomes: list[MemberResult | None],
        timeout: float | None,  # noqa: ASYNC109
        observers: _Observers | None,
    ) -> tuple[list[MemberResult], int | None]:
        """Every member's result (the winner first) and the RACE winner; members of `indexes` run, the
        others' `outcomes` are kept."""
        count = len(self.members)
        limiter = anyio.Semaphore(self.max_concurrent) if self.max_concurrent else None
        deadline = None if timeout is None else anyio.current_time() + timeout
        shared = _Members(outcomes, [None] * count, limiter, deadline)
        running = list(indexes)
        async with anyio.create_task_group() as group:
            if self.strategy is ExecutionStrategy.RACE:
                shared.race = _Race(group.cancel_scope, len(running))
            member = self._run_member if observers is None else functools.partial(self._observed_member, observers)
            for index in running:
                group.start_soon(member, call, index, shared)
        ended = time.perf_counter()
        winner = None if shared.race is None else shared.race.winner
        # Only a member the winner cancelled has no outcome: timeouts and failures are recorded.
        results = [
            outcome if outcome is not None else self._lost(index, shared.started[index], ended)
            for index, outcome in enumerate(outcomes)
        ]
        if winner is None:
            return results, None
        return [results[winner], *(result for result in results if result.member_index != winner)], winner

    async def _observed_member(self, observers: _Observers, call: _MemberCall, index: int, shared: _Members) -> None:
        name = f"{self.name}[{index}]"
        data: dict[str, Any] = {"member_index": index}
        await observers.publish(self.name, "team.member.started", data)
        try:
            if observers.trace:
                async with observers.manager.operation(
                    "team.member", name, attributes={"member_index": index}
                ) as operation:
                    await self._run_member(call, index, shared)
                    outcome = shared.outcomes[index]
                    assert outcome is not None
                    if outcome.status is MemberStatus.OK:
                        operation.output = outcome.result
                    else:
                        operation.error = outcome.error
                        # A RACE loser (one that finished after the race was won too) or a timed-out
                        # member was stopped, not failed.
                        if outcome.status in (MemberStatus.CANCELLED, MemberStatus.TIMEOUT):
                            operation.status = "cancelled"
            else:
                await self._run_member(call, index, shared)
        except anyio.get_cancelled_exc_class():
            await observers.publish(self.name, "team.member.cancelled", data)
            raise
        outcome = shared.outcomes[index]
        assert outcome is not None
        if outcome.error is not None:
            data["error"] = repr(outcome.error)
        await observers.publish(self.name, _MEMBER_EVENTS[outcome.status], data)

    async def _run_member(self, call: _MemberCall, index: int, shared: _Members) -> None:
        outcomes, started, race = shared.outcomes, shared.started, shared.race
        try:
            if shared.deadline is None:  # no scope to enter: a team without a timeout pays nothing for it
                result = await self._started(call, index, shared)
            else:
                with anyio.CancelScope(deadline=shared.deadline) as scope:
                    result = await self._started(call, index, shared)
                if scope.cancelled_caught:
                    error = TeamTimeoutError(
                        f"member {index} of team {self.name!r} did not finish within the timeout; "
                        "raise `timeout` or speed it up"
                    )
                    outcomes[index] = MemberResult(
                        error=error, member_index=index, status=MemberStatus.TIMEOUT, latency=_since(started[index])
                    )
                    if race is not None:
                        race.ended()
                    return
        except Exception as exc:
            outcomes[index] = MemberResult(
                error=exc, member_index=index, status=MemberStatus.ERROR, latency=_since(started[index])
            )
            if race is not None:
                race.ended()
            return
        latency = _since(started[index])
        outcome = MemberResult(
            result=result, member_index=index, status=MemberStatus.OK, latency=latency, usage=_usage_of(result)
        )
        if race is None:
            outcomes[index] = outcome
            return
        if _is_paused(result):
            await self._wait_race(race, outcome, outcomes)
            return
        # Check and set with no await in between: one event loop runs every member, so
        # exactly one can pass this test, even when several finish in the same tick.
        if race.winner is not None:
            outcomes[index] = MemberResult(
                error=TeamMemberCancelled(f"member {index} finished after member {race.winner} won the race"),
                member_index=index,
                status=MemberStatus.CANCELLED,
                latency=latency,
            )
            return
        race.winner = index
        race.scope.cancel()
        outcomes[index] = outcome

    async def _started(self, call: _MemberCall, index: int, shared: _Members) -> Any:
        """`call(index)` once the limiter lets the member start, its start time recorded."""
        if shared.limiter is None:
            shared.started[index] = time.perf_counter()
            return await call(index)
        async with shared.limiter:
            shared.started[index] = time.perf_counter()
            return await call(index)

    async def _wait_race(self, race: _Race, paused: MemberResult, outcomes: list[MemberResult | None]) -> None:
        """Hold a member paused for approvals until the race is decided.

        It keeps its paused result when the race ends with no winner; when another member wins (or
        the team is cancelled) its paused run is discarded and it is reported cancelled.
        """
        outcomes[paused.member_index] = paused
        race.ended()
        if race.winner is None:
            try:
                await race.decided.wait()
            except anyio.get_cancelled_exc_class():
                await self._discard(paused, race.winner, outcomes)
                raise
            return
        await self._discard(paused, race.winner, outcomes)

    async def _discard(self, paused: MemberResult, winner: int | None, outcomes: list[MemberResult | None]) -> None:
        """Drop the paused run of a member that lost the race (`Agent.discard`), shielded and bounded."""
        index = paused.member_index
        session = paused.result.session_id
        reason = f"member {winner} won the race" if winner is not None else "the team was cancelled"
        message = f"member {index} paused for approvals and {reason}; its paused run (session {session!r}) "
        discard = getattr(self.members[index], "discard", None) if self.executor is None else None
        cause: Exception | None = None
        if not callable(discard):
            message += "stays: this member has no `discard` here (not an in-process agent)"
        else:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_DISCARD_BOUND_S) as bound:
                try:
                    await discard(session)
                    message += "was discarded"
                except Exception as exc:
                    cause = exc
                    message += f"could not be discarded: {text_of(exc)}"
            if bound.cancelled_caught:
                message += f"was not discarded within {_DISCARD_BOUND_S:g} s"
        error = TeamMemberCancelled(message)
        error.__cause__ = cause
        outcomes[index] = MemberResult(
            error=error, member_index=index, status=MemberStatus.CANCELLED, latency=paused.latency
        )

    async def _first_run(self, raw: Any, index: int) -> Any:
        value = raw if self.input_mapper is None else self.input_mapper(raw, index)
        if inspect.isawaitable(value):  # an async mapper
            value = await value
        function, is_async = self._entries[index]
        if is_async:
            return await function(value)
        result = await anyio.to_thread.run_sync(functools.partial(function, value))
        if inspect.isawaitable(result):
            return await result
        return result

    def _lost(self, index: int, start: float | None, ended: float) -> MemberResult:
        error = TeamMemberCancelled(f"member {index} was cancelled: another member won the race")
        latency = 0.0 if start is None else ended - start
        return MemberResult(error=error, member_index=index, status=MemberStatus.CANCELLED, latency=latency)


def _since(start: float | None) -> float:
    return 0.0 if start is None else time.perf_counter() - start


def _is_paused(result: Any) -> bool:
    """Whether a member's result is a run paused for tool approvals (a `PausedOutput`)."""
    # Until `gecko.core.state` is loaded no result can be one, and a team of callables never loads it.
    state = sys.modules.get("gecko.core.state")
    return state is not None and isinstance(result, state.PausedOutput)


def _usage_of(result: Any) -> TokenUsage | None:
    """The tokens `result` reports using (an `AgentOutput` does), or None."""
    usage = getattr(result, "usage", None)
    if usage is None:
        return None
    from gecko.types import TokenUsage  # pydantic loads once a result carries usage, not at import

    return usage if isinstance(usage, TokenUsage) else None
