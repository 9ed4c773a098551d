"""Building tool results as BIPIA does: a text inserted into a document (shared by assemble.py and resplit.py)."""

from __future__ import annotations

import random


def insert(context: str, text: str, rng: random.Random) -> str:
    """`text` inside `context` at one of BIPIA's positions, drawn from `rng`: before, in the middle (at a line
    break) or after the context."""
    where = rng.choice(("start", "middle", "end"))
    if where == "start":
        return text + "\n" + context
    if where == "end":
        return context + "\n" + text
    lines = context.split("\n")
    middle = len(lines) // 2
    return "\n".join([*lines[:middle], text, *lines[middle:]])
