"""W13, guardrail checks: checks per second on a mixed corpus, `detect` per text size, and the latency one
agent turn gains with guardrails on.

Run with `python bench/w13_guardrails.py [--semantic]` in an environment with gecko-ai-core and
gecko-ai-guardrails installed (`--semantic`: the opt-in semantic mode, with `gecko-ai-guardrails[semantic]`).
The mixed corpus is the dev split of the plugin's labelled set (`gecko-guardrails/eval/data/dev.jsonl`:
public user inputs and tool results, injections and benign texts, English, Chinese and other languages),
each text checked on its own channel. No network: the model is scripted and the URL host is numeric.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import anyio
from gecko_guardrails import Guardrails, configure, detect

from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import ToolCall

PAGE = "Our shop opens at nine. We sell bread, cheese and wine. " * 18  # about 1 KB
TABLE = "\n".join(f"Row {row}: parcel left the warehouse on time, signed for." for row in range(17))  # about 1 KB
TEXTS = {
    "60 characters": "Please ignore the warning about deprecated APIs; it is fine.",
    "1 KB English page": PAGE,
    "1 KB table, 17 lines": TABLE,
    "1 KB Chinese page": "我们的商店九点开门，出售面包、奶酪和葡萄酒。" * 45,  # noqa: RUF001
    "10 KB tool result": "Row 17: value=42, status ok; next row follows. " * 220,
}


CORPUS = Path(__file__).resolve().parents[1] / "gecko-guardrails" / "eval" / "data" / "dev.jsonl"


def time_corpus(semantic: bool) -> None:
    """Checks per second over the mixed corpus, and the spread of one check, per channel and in all."""
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    detect("warm-up: the first check loads the classifier", "user", semantic=semantic)
    detect("warm-up: the first check loads the classifier", "tool", semantic=semantic)
    spent: dict[str, list[float]] = {"user": [], "tool": []}
    flagged = 0
    for row in rows:
        start = time.process_time()
        flagged += bool(detect(row["text"], row["channel"], semantic=semantic))
        spent[row["channel"]].append(time.process_time() - start)
    every = spent["user"] + spent["tool"]
    print(f"mixed corpus: {len(rows):,} texts of {CORPUS.name}, {flagged:,} flagged")
    for name, times in (*spent.items(), ("all", every)):
        p95 = statistics.quantiles(times, n=20)[-1]
        print(
            f"  {name:<5} {len(times):>5,} checks: {len(times) / sum(times):,.0f} checks/s CPU, "
            f"median {statistics.median(times) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms"
        )


def time_detect(semantic: bool, repeat: int = 200) -> None:
    if semantic:
        start = time.process_time()
        detect("The first check loads the sentence encoder, once per process.", semantic=True)
        print(f"first detect (loads the sentence encoder): {(time.process_time() - start) * 1e3:.0f} ms CPU")
    for name, text in TEXTS.items():
        # Distinct texts: detection results are cached per text inside the hooks, not in `detect`.
        start = time.process_time()
        for index in range(repeat):
            detect(f"{text}{index}", semantic=semantic)
        elapsed = (time.process_time() - start) / repeat
        print(f"detect, {name}: {elapsed * 1e3:.3f} ms CPU ({1 / elapsed:,.0f} checks/s)")


_pages = itertools.count()


@tool
async def fetch_page(url: str) -> str:
    """Fetch a web page."""
    return f"{PAGE} (page {next(_pages)})"  # a new page every call, as a real tool returns: nothing is cached


async def per_turn(runs: int) -> tuple[float, float]:
    """Wall and CPU seconds per model turn over `runs` runs of two turns each."""
    reply = tool_calls_reply(ToolCall(id="c", name="fetch_page", arguments='{"url": "https://93.184.215.14/"}'))
    agent = Agent(ScriptedModel([reply, "done"], cycle=True), tools=[fetch_page])
    for index in range(20):  # warm-up
        await agent.run(f"warm-up {index}")
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(runs):
        await agent.run(f"question {index}")
    turns = runs * 2
    return (time.perf_counter() - wall) / turns, (time.process_time() - cpu) / turns


async def time_turns(semantic: bool, runs: int = 300) -> None:
    os.environ["GECKO_GUARDRAILS"] = "0"  # installed, the plugin is on unless told otherwise
    previous = configure(None)
    try:
        off_wall, off_cpu = await per_turn(runs)
        guard = Guardrails(semantic=semantic)
        guard.protect("fetch_page", urls=["url"], shell=False)
        configure(guard)
        on_wall, on_cpu = await per_turn(runs)
    finally:
        configure(previous)
    print(
        f"agent turn, CPU: off {off_cpu * 1e3:.3f} ms, on {on_cpu * 1e3:.3f} ms, "
        f"added {(on_cpu - off_cpu) * 1e3:.3f} ms; wall: off {off_wall * 1e3:.3f} ms, on {on_wall * 1e3:.3f} ms "
        f"({runs * 2} turns each, one 1 KB tool result per run)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--semantic", action="store_true", help="the opt-in semantic mode of the classifier")
    mode = parser.parse_args().semantic
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; semantic mode {'on' if mode else 'off'}")
    time_corpus(mode)
    time_detect(mode)
    anyio.run(time_turns, mode)
