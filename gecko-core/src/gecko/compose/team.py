"""Teams: several members work on one input at once; every member (ALL) or the first success (RACE)."""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import anyio

from gecko.core._sanitize import text_of
from gecko.errors import ConfigurationError, TeamError, TeamMemberCancelled, TeamTimeoutError
from gecko.plugins import PluginManager, aplugin_manager

if TYPE_CHECKING:
    from gecko.types import TokenUsage

if TYPE_CHECKING:
    from gecko.plugins.executors import Executor

__all__ = ("ExecutionStrategy", "MemberStatus", "MemberResult", "Team")

InputMapper = Callable[[Any, int], Any]
"""`input_mapper(raw_input, member_index)` returns the input of one member."""


class ExecutionStrategy(str, Enum):
    """How a team runs its members."""

    ALL = "all"
    """Every member runs to completion (at most `max_concurrent` at once)."""
    RACE = "race"
    """The first member to succeed wins; the others are cancelled."""


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
    """The shared state of one RACE run."""

    __slots__ = ("scope", "winner")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.winner: int | None = None


@dataclass(slots=True)
class _Members:
    """What the members of one team run share: their outcomes and start times, the limiter, the race."""

    outcomes: list[MemberResult | None]
    started: list[float | None]
    limiter: anyio.Semaphore | None
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
    succeed wins: the others are cancelled and awaited before `run` returns, which lists the
    winner first and then every other member (as error or cancelled); when no member succeeds,
    every member's failed result comes back, in member order.

    Sync callables run in worker threads. A thread cannot be interrupted: a cancelled or timed-out
    sync member is awaited until its function returns, so nothing outlives `run`.

    Args:
        members: What runs; see above.
        name: Names the team (a workflow node name, logs).
        strategy: ALL or RACE.
        max_concurrent: At most this many members run at once; None for no limit.
        input_mapper: `input_mapper(raw_input, member_index)` gives each member its own input
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
        if max_concurrent is not None and max_concurrent < 1:
            raise ConfigurationError(f"max_concurrent must be at least 1 (or None for no limit), got {max_concurrent}")
        self.members = list(members)
        self.name = name
        self.strategy = ExecutionStrategy(strategy)
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
        """
        observers = await _observers()
        if observers is None:
            return await self._run(input, timeout, None)
        strategy = self.strategy.value
        await observers.publish(self.name, "team.started", {"strategy": strategy, "members": len(self.members)})
        try:
            if observers.trace:
                async with observers.manager.operation(
                    "team.run", self.name, input=input, attributes={"strategy": strategy, "run_id": observers.run_id}
                ) as operation:
                    results = operation.output = await self._run(input, timeout, observers)
            else:
                results = await self._run(input, timeout, observers)
        except BaseException as exc:
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            await observers.publish(self.name, "team.cancelled" if cancelled else "team.failed", {"error": repr(exc)})
            raise
        winner = results[0].member_index if self.strategy is ExecutionStrategy.RACE and results[0].is_success else None
        statuses = {str(result.member_index): result.status.value for result in results}
        await observers.publish(self.name, "team.finished", {"statuses": statuses, "winner": winner})
        return results

    async def _run(self, input: Any, timeout: float | None, observers: _Observers | None) -> list[MemberResult]:  # noqa: ASYNC109
        count = len(self.members)
        limiter = anyio.Semaphore(self.max_concurrent) if self.max_concurrent else None
        shared = _Members([None] * count, [None] * count, limiter)
        with anyio.move_on_after(timeout):
            async with anyio.create_task_group() as group:
                if self.strategy is ExecutionStrategy.RACE:
                    shared.race = _Race(group.cancel_scope)
                member = self._run_member if observers is None else functools.partial(self._observed_member, observers)
                for index in range(count):
                    group.start_soon(member, index, input, shared)
        ended = time.perf_counter()
        winner = None if shared.race is None else shared.race.winner
        results = [
            outcome
            if outcome is not None
            else self._unfinished(index, shared.started[index], ended, winner is not None)
            for index, outcome in enumerate(shared.outcomes)
        ]
        if winner is None:
            return results
        return [results[winner], *(result for result in results if result.member_index != winner)]

    async def _observed_member(self, observers: _Observers, index: int, raw: Any, shared: _Members) -> None:
        name = f"{self.name}[{index}]"
        data: dict[str, Any] = {"member_index": index}
        await observers.publish(self.name, "team.member.started", data)
        try:
            if observers.trace:
                async with observers.manager.operation(
                    "team.member", name, attributes={"member_index": index}
                ) as operation:
                    await self._run_member(index, raw, shared)
                    outcome = shared.outcomes[index]
                    assert outcome is not None
                    if outcome.status is MemberStatus.OK:
                        operation.output = outcome.result
                    else:
                        operation.error = outcome.error
                        # A member that finished after the race was won lost it all the same.
                        if outcome.status is MemberStatus.CANCELLED:
                            operation.status = "cancelled"
            else:
                await self._run_member(index, raw, shared)
        except anyio.get_cancelled_exc_class():
            await observers.publish(self.name, "team.member.cancelled", data)
            raise
        outcome = shared.outcomes[index]
        assert outcome is not None
        if outcome.error is not None:
            data["error"] = repr(outcome.error)
        await observers.publish(self.name, _MEMBER_EVENTS[outcome.status], data)

    async def _run_member(self, index: int, raw: Any, shared: _Members) -> None:
        outcomes, started, limiter, race = shared.outcomes, shared.started, shared.limiter, shared.race
        try:
            value = raw if self.input_mapper is None else self.input_mapper(raw, index)
            if limiter is None:
                started[index] = time.perf_counter()
                result = await self._invoke(index, value)
            else:
                async with limiter:
                    started[index] = time.perf_counter()
                    result = await self._invoke(index, value)
        except Exception as exc:
            outcomes[index] = MemberResult(
                error=exc, member_index=index, status=MemberStatus.ERROR, latency=_since(started[index])
            )
            return
        latency = _since(started[index])
        if race is not None:
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
        outcomes[index] = MemberResult(
            result=result,
            member_index=index,
            status=MemberStatus.OK,
            latency=latency,
            usage=_usage_of(result),
        )

    async def _invoke(self, index: int, value: Any) -> Any:
        function, is_async = self._entries[index]
        if is_async:
            return await function(value)
        result = await anyio.to_thread.run_sync(functools.partial(function, value))
        if inspect.isawaitable(result):
            return await result
        return result

    async def _resume_members(
        self, results: list[MemberResult], decisions: dict[int, dict[str, bool]]
    ) -> list[MemberResult]:
        """`results` with each paused member (a key of `decisions`) resumed concurrently with its decisions.

        A workflow calls this when it resumes a team node paused for tool approvals
        (`gecko.compose._approvals`); a resumed member that pauses again is reported paused again.
        """
        resumed = list(results)

        async def resume(position: int, result: MemberResult) -> None:
            index = result.member_index
            member = self.members[index]
            started = time.perf_counter()
            try:
                output = await member.resume(decisions[index], session_id=result.result.session_id)  # type: ignore[attr-defined]
            except Exception as exc:
                resumed[position] = MemberResult(
                    error=exc, member_index=index, status=MemberStatus.ERROR, latency=_since(started)
                )
                return
            resumed[position] = MemberResult(
                result=output,
                member_index=index,
                status=MemberStatus.OK,
                latency=_since(started),
                usage=_usage_of(output),
            )

        async with anyio.create_task_group() as group:
            for position, result in enumerate(results):
                if result.member_index in decisions:
                    group.start_soon(resume, position, result)
        return resumed

    def _unfinished(self, index: int, start: float | None, ended: float, lost_race: bool) -> MemberResult:
        latency = 0.0 if start is None else ended - start
        if lost_race:
            error: Exception = TeamMemberCancelled(f"member {index} was cancelled: another member won the race")
            return MemberResult(error=error, member_index=index, status=MemberStatus.CANCELLED, latency=latency)
        error = TeamTimeoutError(
            f"member {index} of team {self.name!r} did not finish within the timeout; raise `timeout` or speed it up"
        )
        return MemberResult(error=error, member_index=index, status=MemberStatus.TIMEOUT, latency=latency)


def _since(start: float | None) -> float:
    return 0.0 if start is None else time.perf_counter() - start


def _usage_of(result: Any) -> TokenUsage | None:
    """The tokens `result` reports using (an `AgentOutput` does), or None."""
    usage = getattr(result, "usage", None)
    if usage is None:
        return None
    from gecko.types import TokenUsage  # pydantic loads once a result carries usage, not at import

    return usage if isinstance(usage, TokenUsage) else None
