"""Checks of the numbers a user configures: durations and counts, refused with `ConfigurationError`."""

from __future__ import annotations

import math

from gecko.errors import ConfigurationError

__all__ = ("positive_seconds", "at_least")


def positive_seconds(value: object, name: str) -> float | None:
    """`value` as seconds: None stays None; a bool, a non-number, NaN, zero or less is refused.

    Infinity is allowed and means no limit.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


def at_least(value: object, minimum: int, name: str) -> int:
    """`value` as a whole count of at least `minimum`; a bool, a float or a smaller number is refused."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value
