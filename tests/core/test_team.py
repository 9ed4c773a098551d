"""Team: ALL and RACE strategies, sharding, timeouts and the shape of every member's outcome."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gecko.compose.nodes import NodeContext
from gecko.compose.team import ExecutionStrategy, MemberResult, MemberStatus, Team
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.core.agent import Agent
from gecko.core.builder import AgentBuilder
from gecko.errors import ConfigurationError, TeamError, TeamMemberCancelled, TeamTimeoutError
from gecko.testing.models import ScriptedModel, reply
from gecko.types import TokenUsage


async def test_team_input_sharding() -> None:
    async def total(numbers: list[int]) -> int:
        return sum(numbers)

    team = Team([total, total, total], input_mapper=lambda raw, idx: raw[idx * 2 : idx * 2 + 2])

    results = await team.run([1, 2, 3, 4, 5, 6])

    assert [result.value for result in results] == [3, 7, 11]


async def test_team_race_strategy() -> None:
    cancelled: list[str] = []

    async def fast(_: object) -> str:
        return "fast"

    async def slow(_: object) -> str:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append("slow")
        raise AssertionError("unreachable")

    results = await Team([slow, fast], strategy=ExecutionStrategy.RACE).run("go")

    assert results[0].is_success
    assert results[0].value == "fast"
    assert results[0].member_index == 1
    assert cancelled == ["slow"]
    assert results[1].status is MemberStatus.CANCELLED
    assert isinstance(results[1].error, TeamMemberCancelled)


async def test_team_race_all_fail() -> None:
    async def broken(message: str) -> str:
        raise ValueError(message)

    results = await Team([broken, broken, broken], strategy=ExecutionStrategy.RACE).run("boom")

    assert [result.member_index for result in results] == [0, 1, 2]
    assert not any(result.is_success for result in results)
    assert all(isinstance(result.error, ValueError) for result in results)
    assert all(result.status is MemberStatus.ERROR for result in results)


async def test_all_reports_partial_failure_per_member() -> None:
    async def ok(value: int) -> int:
        return value * 2

    def broken(value: int) -> int:
        raise RuntimeError("member down")

    results = await Team([ok, broken, ok]).run(21)

    assert [result.status for result in results] == [MemberStatus.OK, MemberStatus.ERROR, MemberStatus.OK]
    assert results[0].value == 42
    assert isinstance(results[1].error, RuntimeError)


async def test_all_runs_at_most_max_concurrent_members_at_once() -> None:
    running = 0
    peak = 0

    async def member(_: object) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        running -= 1

    results = await Team([member] * 6, max_concurrent=2).run(None)

    assert peak == 2
    assert all(result.is_success for result in results)


@pytest.mark.idle_clock  # the timeout fires once `quick` is done and only `stuck` waits, however loaded the machine
async def test_timeout_keeps_finished_results_and_marks_the_rest_timed_out() -> None:
    async def quick(_: object) -> str:
        return "done"

    async def stuck(_: object) -> str:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    results = await Team([quick, stuck]).run(None, timeout=0.5)

    assert results[0].value == "done"
    assert results[1].status is MemberStatus.TIMEOUT
    assert isinstance(results[1].error, TeamTimeoutError)


@pytest.mark.idle_clock  # the timeout fires once `broken` has failed and only `stuck` waits
async def test_race_timeout_without_winner_returns_every_member_failed() -> None:
    async def broken(_: object) -> str:
        raise KeyError("no")

    async def stuck(_: object) -> str:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    results = await Team([broken, stuck], strategy=ExecutionStrategy.RACE).run(None, timeout=0.5)

    assert [result.status for result in results] == [MemberStatus.ERROR, MemberStatus.TIMEOUT]


async def test_sync_members_run_in_worker_threads() -> None:
    def where(_: object) -> int:
        return threading.get_ident()

    results = await Team([where]).run(None)

    assert results[0].value != threading.get_ident()


def _reviewer() -> Agent:
    model = ScriptedModel([reply("ship it", input_tokens=3, output_tokens=2)])
    return AgentBuilder().with_model(model).with_system_prompt("You review designs.").build()


def _shouting_workflow() -> Workflow:
    async def shout(ctx: NodeContext) -> str:
        return str(ctx.get_last_output()).upper()

    workflow = Workflow("shout", checkpoint_strategy=CheckpointStrategy.MANUAL)
    workflow.add_node("shout", shout)
    workflow.set_entry_point("shout")
    return workflow


async def test_agent_members_report_their_usage() -> None:
    results = await Team([_reviewer()]).run("the new API")

    assert str(results[0].value) == "ship it"
    assert results[0].usage == TokenUsage(input_tokens=3, output_tokens=2, total_tokens=5, requests=1)


async def test_workflow_members_run_through_execute() -> None:
    results = await Team([_shouting_workflow()]).run("abc")

    assert results[0].value.output == "ABC"


async def test_a_team_is_a_member_of_another_team() -> None:
    async def shout(text: str) -> str:
        return text.upper()

    inner = Team([shout, shout])

    results = await Team([inner]).run("x")

    assert [result.value for result in results[0].value] == ["X", "X"]


async def test_value_of_a_failed_member_raises_team_error_caused_by_its_error() -> None:
    async def broken(_: object) -> None:
        raise ValueError("bad input")

    result: MemberResult = (await Team([broken]).run(None))[0]

    with pytest.raises(TeamError, match="bad input") as caught:
        _ = result.value
    assert isinstance(caught.value.__cause__, ValueError)


async def test_an_async_input_mapper_is_awaited_for_every_kind_of_member() -> None:
    # Before, an async member got the mapper's coroutine object as its input (never awaited).
    def sync_echo(value: Any) -> Any:
        return value

    async def mapper(raw: str, idx: int) -> str:
        await anyio.lowlevel.checkpoint()
        return f"{raw}-{idx}"

    agent = Agent(ScriptedModel(["done"]))
    results = await Team([_echo, sync_echo, agent], input_mapper=mapper).run("in")
    assert [result.result for result in results[:2]] == ["in-0", "in-1"]
    assert isinstance(agent.model, ScriptedModel)
    assert agent.model.requests[0].messages[-1].text == "in-2"


async def test_an_input_mapper_error_fails_only_that_member() -> None:
    async def echo(value: Any) -> Any:
        return value

    def mapper(raw: list[int], idx: int) -> int:
        return raw[idx]

    results = await Team([echo, echo, echo], input_mapper=mapper).run([7, 8])

    assert [result.status for result in results] == [MemberStatus.OK, MemberStatus.OK, MemberStatus.ERROR]
    assert isinstance(results[2].error, IndexError)


def test_a_member_that_cannot_run_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="not runnable"):
        Team([42])


def test_an_empty_team_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="at least one member"):
        Team([])


async def _echo(value: Any) -> Any:
    return value


@pytest.mark.parametrize("timeout", [0, -1, -0.0, float("nan"), float("-inf"), "5", True, [1]])
@pytest.mark.parametrize("strategy", [ExecutionStrategy.ALL, ExecutionStrategy.RACE])
async def test_a_timeout_that_is_not_positive_seconds_is_refused_before_any_member_runs(
    timeout: Any,  # noqa: ASYNC109 - the value under test
    strategy: ExecutionStrategy,
) -> None:
    ran: list[Any] = []

    async def member(value: Any) -> Any:
        ran.append(value)
        return value

    team = Team([member, member], strategy=strategy)
    with pytest.raises(ConfigurationError, match="timeout must be a positive number of seconds"):
        await team.run(1, timeout=timeout)
    assert ran == []
    winner = (await team.run(2, timeout=float("inf")))[0]  # infinity is no limit
    assert (winner.status, winner.result) == (MemberStatus.OK, 2)


@pytest.mark.parametrize("max_concurrent", [0, -1, 1.5, float("nan"), True, "2"])
def test_a_max_concurrent_that_is_not_a_whole_count_is_refused(max_concurrent: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_concurrent"):
        Team([_echo], max_concurrent=max_concurrent)


def test_an_unknown_strategy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="strategy must be one of 'all', 'race'"):
        Team([_echo], strategy="fastest")  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [[], [1], None, 5, {"a": 1}])
async def test_shards_a_mapper_cannot_cut_fail_their_members_only(raw: Any) -> None:
    results = await Team([_echo, _echo], input_mapper=lambda raw, idx: raw[idx]).run(raw)
    shardable = raw if isinstance(raw, list) else []
    assert [result.status is MemberStatus.OK for result in results] == [idx < len(shardable) for idx in range(2)]
    assert [result.member_index for result in results] == [0, 1]
