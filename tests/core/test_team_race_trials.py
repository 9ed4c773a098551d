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


async def test_race_with_paused_members_has_a_finisher_win_or_pauses_and_discards_every_paused_loser() -> None:
    from gecko.core.state import PausedOutput

    rng = random.Random(7)
    live = 0
    returned: list[str] = []
    discarded: list[str] = []

    class Member:
        """Ends after `steps` checkpoints by finishing, failing or pausing for an approval."""

        def __init__(self, index: int, steps: int, end: str) -> None:
            self.index, self.steps, self.end = index, steps, end

        async def run(self, _: object) -> object:
            nonlocal live
            live += 1
            try:
                for _ in range(self.steps):
                    await anyio.lowlevel.checkpoint()
                if self.end == "fail":
                    raise ValueError(self.index)
                if self.end == "pause":
                    returned.append(f"s{self.index}")
                    return PausedOutput(session_id=f"s{self.index}")
                return self.index
            finally:
                live -= 1

        async def discard(self, session_id: str) -> None:
            await anyio.lowlevel.checkpoint()
            discarded.append(session_id)

    for trial in range(TRIALS // 4):
        returned.clear()
        discarded.clear()
        plans = [
            (rng.choice([0, 1, 1, 2, 3]), rng.choice(["finish", "fail", "pause"])) for _ in range(rng.randint(1, 5))
        ]
        members = [Member(index, steps, end) for index, (steps, end) in enumerate(plans)]

        results = await Team(members, strategy=ExecutionStrategy.RACE).run(None)

        context = f"trial {trial}: plans {plans}"
        assert live == 0, context
        by_index = {result.member_index: result for result in results}
        assert sorted(by_index) == list(range(len(plans))), context
        paused = [index for index, (_, end) in enumerate(plans) if end == "pause"]
        if any(end == "finish" for _, end in plans):
            assert results[0].status is MemberStatus.OK, context
            assert plans[results[0].member_index][1] == "finish", context
            assert sum(result.is_success for result in results) == 1, context
            # Every paused run that came back lost and was discarded; the others were cancelled before pausing.
            assert sorted(discarded) == sorted(returned), context
            assert all(by_index[index].status is MemberStatus.CANCELLED for index in paused), context
        else:
            assert discarded == [], context
            assert sorted(returned) == sorted(f"s{index}" for index in paused), context
            assert [result.member_index for result in results] == list(range(len(plans))), context
            assert all(isinstance(by_index[index].value, PausedOutput) for index in paused), context
