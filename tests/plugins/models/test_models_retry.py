from __future__ import annotations

import anyio
import pytest

from gecko.errors import (
    ConfigurationError,
    ModelBadRequestError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
)
from gecko.plugins.models import RetryPolicy


def test_backoff_grows_exponentially_within_jitter() -> None:
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=100.0, jitter=0.5)
    for retry, base in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        assert base * 0.5 <= policy.backoff(retry) <= base


def test_backoff_is_capped_by_max_delay() -> None:
    assert RetryPolicy(initial_delay=1.0, max_delay=3.0, jitter=0.0).backoff(10) == 3.0


def test_retry_after_is_a_lower_bound_on_the_wait() -> None:
    policy = RetryPolicy(initial_delay=0.1, jitter=0.0)
    assert policy.wait_before(1, ModelRateLimitError("slow down", retry_after=2.5)) == 2.5


def test_invalid_policy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)


async def test_errors_outside_retry_on_are_raised_at_once() -> None:
    calls: list[float | None] = []

    async def attempt(remaining: float | None) -> str:
        calls.append(remaining)
        raise ModelBadRequestError("bad")

    with pytest.raises(ModelBadRequestError):
        await RetryPolicy(initial_delay=0.001).run(attempt)
    assert len(calls) == 1


async def test_attempt_is_told_the_remaining_budget() -> None:
    seen: list[float | None] = []

    async def attempt(remaining: float | None) -> str:
        seen.append(remaining)
        if len(seen) < 2:
            raise ModelServerError("boom")
        return "ok"

    assert await RetryPolicy(initial_delay=0.001, total_timeout=5.0).run(attempt) == "ok"
    assert seen[0] is not None
    assert seen[1] is not None
    assert 0 < seen[1] < seen[0] <= 5.0


async def test_a_wait_past_the_deadline_is_not_started() -> None:
    calls = 0

    async def attempt(remaining: float | None) -> str:
        nonlocal calls
        calls += 1
        raise ModelRateLimitError("later", retry_after=60)

    with pytest.raises(ModelRateLimitError):
        await RetryPolicy(total_timeout=5.0).run(attempt)
    assert calls == 1


async def test_a_retry_after_beyond_max_retry_after_ends_the_retries_even_without_a_deadline() -> None:
    calls = 0

    async def attempt(remaining: float | None) -> str:
        nonlocal calls
        calls += 1
        raise ModelRateLimitError("come back in 30 years", retry_after=10**9)

    with anyio.fail_after(10), pytest.raises(ModelRateLimitError) as caught:
        await RetryPolicy(max_attempts=5, total_timeout=None).run(attempt)
    assert (calls, caught.value.retry_after) == (1, 10**9)


async def test_a_retry_after_within_max_retry_after_is_waited_for() -> None:
    calls = 0

    async def attempt(remaining: float | None) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ModelRateLimitError("briefly", retry_after=0.05)
        return "ok"

    assert await RetryPolicy(max_retry_after=0.05, total_timeout=None).run(attempt) == "ok"
    assert calls == 2


@pytest.mark.parametrize("bound", [-1, float("inf"), float("nan"), "60", True])
def test_a_max_retry_after_that_is_not_finite_seconds_is_a_configuration_error(bound: object) -> None:
    with pytest.raises(ConfigurationError, match="max_retry_after"):
        RetryPolicy(max_retry_after=bound)  # type: ignore[arg-type]


async def test_a_first_attempt_outlasting_the_budget_is_a_timeout() -> None:
    async def attempt(remaining: float | None) -> str:
        await anyio.sleep(30)
        return "late"

    with anyio.fail_after(10), pytest.raises(ModelTimeoutError, match=r"total time budget of 0\.2 s"):
        await RetryPolicy(total_timeout=0.2).run(attempt)


async def test_a_retry_cut_off_by_the_budget_reports_the_error_that_caused_it() -> None:
    calls = 0

    async def attempt(remaining: float | None) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ModelServerError("backend down")
        await anyio.sleep(30)
        return "late"

    with anyio.fail_after(30), pytest.raises(ModelServerError, match="backend down"):
        await RetryPolicy(initial_delay=0.001, total_timeout=2.0).run(attempt)
    assert calls == 2
