"""RACE under randomized schedules: one winner (the first to finish), every outcome reported, no task left."""

from __future__ import annotations

import functools
import random

import anyio

from gecko.compose.team import ExecutionStrategy, MemberStatus, Team

TRIALS = 1000


async def test_race_has_exactly_one_winner_and_leaves_no_task_over_randomized_trials() -> None:
    rng = random.Random(6)
    live = 0
    finished: list[int] = []

    async def member(_: object, *, index: int, steps: int, fails: bool) -> int:
        nonlocal live
        live += 1
        try:
            if steps < 0:
                await anyio.sleep(0.0001 * -steps)
            for _ in range(steps):
                await anyio.lowlevel.checkpoint()
            if fails:
                raise ValueError(index)
            finished.append(index)
            return index
        finally:
            live -= 1

    for trial in range(TRIALS):
        finished.clear()
        # Steps: 0 = returns without awaiting; equal step counts finish in the same tick; < 0 = a tiny sleep.
        plans = [(rng.choice([-2, -1, 0, 0, 1, 1, 2, 3]), rng.random() < 0.35) for _ in range(rng.randint(1, 6))]
        members = [
            functools.partial(member, index=index, steps=steps, fails=fails)
            for index, (steps, fails) in enumerate(plans)
        ]

        results = await Team(members, strategy=ExecutionStrategy.RACE).run(None)

        context = f"trial {trial}: plans {plans}"
        assert live == 0, context
        assert sorted(result.member_index for result in results) == list(range(len(plans))), context
        winners = [result for result in results if result.is_success]
        if all(fails for _, fails in plans):
            assert winners == [], context
            assert all(result.status is MemberStatus.ERROR for result in results), context
        else:
            assert len(winners) == 1, context
            assert results[0] is winners[0], context
            assert results[0].value == finished[0], context
