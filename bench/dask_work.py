"""Members for bench/w14_dask.py: the Dask workers import them by this module's path."""

from __future__ import annotations

import time


def burn(milliseconds: float) -> float:
    """`milliseconds` of pure-Python CPU work (holds the GIL, like parsing or scoring would)."""
    end = time.thread_time() + milliseconds / 1000
    total = 0.0
    while time.thread_time() < end:
        total += sum(range(200))
    return total


def echo(value: int) -> int:
    return value
