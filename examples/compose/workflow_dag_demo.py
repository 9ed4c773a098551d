"""A parallel DAG: branches run as soon as their inputs are ready, write state through merge rules,
a conditional edge skips a branch, a human approves through interrupt/resume, and every step streams.

Offline: in-memory storage, no model.
"""

from __future__ import annotations

from contextlib import aclosing

import anyio

from gecko.compose.nodes import NodeContext, interrupt
from gecko.compose.workflow import Workflow
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage


async def fetch(ctx: NodeContext) -> list[str]:
    return ["alpha", "beta", "gamma"]


async def count_words(ctx: NodeContext) -> int:
    await anyio.sleep(0.05)  # a slow branch: it never holds the fast one back
    ctx.state["notes"] = [f"{len(ctx.get_last_output())} words"]
    return len(ctx.get_last_output())


async def upper(ctx: NodeContext) -> list[str]:
    ctx.state["notes"] = ["uppercased"]
    return [word.upper() for word in ctx.get_last_output()]


async def translate(ctx: NodeContext) -> str:
    return "never runs: its condition is false"


async def approve(ctx: NodeContext) -> str:
    verdict = interrupt({"question": "publish?", "notes": ctx.state["notes"]})
    return f"published with verdict {verdict!r}"


def build(storage: Storage) -> Workflow:
    wf = Workflow("Report", storage=storage, merge_rules={"notes": "append"})
    wf.add_node("fetch", fetch).add_node("count", count_words).add_node("upper", upper)
    wf.add_node("translate", translate).add_node("approve", approve)
    wf.add_edge("fetch", "count").add_edge("fetch", "upper")
    wf.add_edge("fetch", "translate", condition=lambda ctx: ctx.input == "translate")
    wf.add_edge("count", "approve").add_edge("upper", "approve").add_edge("translate", "approve")
    return wf.set_entry_point("fetch")


async def main() -> None:
    storage = await create_storage("memory://")
    wf = build(storage)
    print(wf.to_mermaid())
    print("layers:", wf.layers)
    async with aclosing(wf.stream("report", session_id="demo")) as events:
        async for event in events:
            print(f"  {event.type:<24} {event.data}")
    # Another worker (here: a fresh Workflow object) resumes the paused session with the human's answer.
    result = await build(storage).resume("demo", "yes")
    print("state:", result.state)
    print("result:", result.output)


if __name__ == "__main__":
    anyio.run(main)
