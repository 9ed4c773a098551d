"""The one check of a vector's numbers, shared by what embedders answer and what vector stores take."""

from __future__ import annotations

import array
import math
import numbers
from collections.abc import Collection, Iterable, Mapping

__all__ = ("float_vector",)

FLOAT32_MAX = 3.4028234663852886e38


def float_vector(values: object) -> array.array[float]:
    """`values` as float64s, if they are real numbers (booleans are not), finite, and the vector fits float32.

    Raises:
        ValueError: anything else; the message completes a sentence about the vector ("... is empty").
    """
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ValueError(f"must be a sequence of numbers, got {type(values).__name__}")
    items = values if isinstance(values, Collection) else list(values)
    # `True` is an int and numpy's bool converts to a float: both pass `array`, so types are checked first.
    for kind in set(map(type, items)):
        if issubclass(kind, bool) or not issubclass(kind, numbers.Real):
            raise ValueError(f"must be a sequence of real numbers, and holds a {kind.__name__}")
    try:
        vector = array.array("d", items)
    except (TypeError, ValueError, OverflowError) as exc:  # an int beyond float64: OverflowError
        raise ValueError(f"must be a sequence of numbers: {exc}") from exc
    if not vector:
        raise ValueError("is empty")
    norm = math.hypot(*vector)
    # Backends store float32: a norm within its range keeps every component finite there.
    if not math.isfinite(norm) or norm > FLOAT32_MAX:
        raise ValueError("has a NaN, infinite or too large component")
    return vector
