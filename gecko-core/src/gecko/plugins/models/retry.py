"""The one retry layer for provider calls: exponential backoff with jitter, bounded twice.

Attempts are bounded by count and by total time; a provider's `Retry-After` hint is honoured
as a lower bound on the wait up to `max_retry_after`, and a wait that would overrun the time
budget, or a hint beyond that bound, is not started: the error is raised at once.
Provider plugins wrap each call in `RetryPolicy.run` and switch off any retries of their SDK.
It lives beside the model contracts (layer 2) so that every model or embedder plugin can use it;
import it as `from gecko.plugins.models import RetryPolicy`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from gecko._checks import at_least, positive_seconds
from gecko.errors import (
    ConfigurationError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
)

__all__ = ("RetryPolicy", "RETRYABLE_ERRORS")

T = TypeVar("T")

RETRYABLE_ERRORS: tuple[type[ModelError], ...] = (
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
    ModelConnectionError,
)
"""Errors worth another attempt: the same request may succeed later."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed provider call.

    Args:
        max_attempts: attempts in all, the first included (1 disables retries).
        initial_delay: wait before the second attempt, in seconds, before jitter.
        multiplier: growth of the wait per attempt.
        max_delay: cap on one computed wait (a longer `Retry-After` is still honoured).
        max_retry_after: the longest `Retry-After` hint worth waiting for, in seconds (default one
            minute); a longer hint ends the retries at once with the error that carried it, so
            a server asking for hours cannot park a call even when `total_timeout` is None.
        jitter: fraction of each wait drawn at random, so clients do not retry in lockstep.
        total_timeout: seconds for all attempts and waits together; None for no bound.
        retry_on: error classes that are retried; anything else is raised at once.
    """

    max_attempts: int = 4
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    jitter: float = 0.5
    total_timeout: float | None = 120.0
    retry_on: tuple[type[BaseException], ...] = RETRYABLE_ERRORS

    def __post_init__(self) -> None:
        at_least(self.max_attempts, 1, "max_attempts")
        for name, value, low in (
            ("initial_delay", self.initial_delay, 0.0),
            ("max_delay", self.max_delay, 0.0),
            ("max_retry_after", self.max_retry_after, 0.0),
            ("multiplier", self.multiplier, 1.0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < math.inf:
                raise ConfigurationError(f"{name} must be a finite number of at least {low:g}, got {value!r}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) or not 0.0 <= self.jitter <= 1.0:
            raise ConfigurationError(f"jitter must be between 0 and 1, got {self.jitter}")
        positive_seconds(self.total_timeout, "total_timeout")

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (1 = the second attempt), jitter included."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        return base * (1.0 - self.jitter * random.random())

    def wait_before(self, retry: int, error: BaseException) -> float:
        """The wait before retry number `retry` after `error`: backoff, but never under `Retry-After`."""
        wait = self.backoff(retry)
        hint = _retry_after(error)
        return wait if hint is None or hint <= wait else hint

    async def run(self, attempt: Callable[[float | None], Awaitable[T]]) -> T:
        """Call `attempt(remaining_seconds)` until it succeeds or the budget is spent.

        `remaining_seconds` (None when unbounded) lets the attempt cap its own timeout. An
        attempt still running when the total time is up is cancelled.

        Raises:
            The last failed attempt's error once attempts or time run out (also when time runs
            out during a retry), at once an error not in `retry_on`, and `ModelTimeoutError`
            when the first attempt outlasts the total time.
        """
        deadline = None if self.total_timeout is None else time.monotonic() + self.total_timeout
        retry = 0
        error: BaseException | None = None
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                with anyio.fail_after(remaining):
                    return await attempt(remaining)
            except self.retry_on as exc:
                error = exc
            except TimeoutError as exc:
                if isinstance(exc, ModelError):
                    raise
                if error is None:
                    raise ModelTimeoutError(
                        f"no answer within the total time budget of {self.total_timeout:g} s; "
                        "raise RetryPolicy.total_timeout or the model's timeout"
                    ) from exc
                break  # time ran out during a retry: report the error that caused it, outside this handler
            retry += 1
            if retry >= self.max_attempts:
                raise error
            hint = _retry_after(error)
            if hint is not None and hint > self.max_retry_after:
                raise error
            wait = self.wait_before(retry, error)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise error
            await anyio.sleep(wait)
        raise error


def _retry_after(error: BaseException) -> float | None:
    """The finite `Retry-After` hint `error` carries, in seconds; None when it has none."""
    hint = getattr(error, "retry_after", None)
    if isinstance(hint, bool) or not isinstance(hint, (int, float)) or not math.isfinite(hint):
        return None
    return float(hint)
