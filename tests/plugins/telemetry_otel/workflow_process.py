"""One half of an interrupted workflow, run as its own process by test_processes.py.

`python workflow_process.py start|resume STATE SPANS`: `start` runs until the review node
interrupts and saves the storage's keys (value and version) to STATE; `resume` loads them into a
fresh storage at the same versions and
resumes the session. Either way the finished spans are written to SPANS as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gecko.compose.nodes import NodeContext
from gecko.compose.workflow import Workflow
from gecko.plugins.storage.memory import MemoryStorage

SESSION = "approval-1"


def build(storage: MemoryStorage) -> Workflow:
    async def draft(ctx: NodeContext) -> str:
        return "draft"

    async def review(ctx: NodeContext) -> str:
        return f"reviewed: {ctx.interrupt('approve the draft?')}"

    async def publish(ctx: NodeContext) -> str:
        return f"published ({ctx.history['review']})"

    wf = Workflow("approval", storage=storage)
    wf.add_node("draft", draft).add_node("review", review).add_node("publish", publish)
    wf.add_edge("draft", "review").add_edge("review", "publish")
    wf.set_entry_point("draft")
    return wf


async def main(phase: str, saved: dict[str, Any]) -> dict[str, Any]:
    """Run one phase; `start` returns the storage's keys and versions, `resume` starts from `saved` ones."""
    storage = MemoryStorage()
    if phase == "start":
        result = await build(storage).execute("topic", session_id=SESSION)
        assert result.paused, result
        stored = {key: await storage.get_versioned(key) for key in await storage.list_keys("")}
        return {key: {"version": found.version, "value": found.value} for key, found in stored.items() if found}
    for key, found in saved.items():
        # Each write moves a key's version on by one; the seals bind the version they were written at.
        for _ in range(found["version"]):
            await storage.set(key, found["value"])
    result = await build(storage).resume(SESSION, "yes")
    assert result.output == "published (reviewed: yes)", result
    return saved


if __name__ == "__main__":
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    phase, state = sys.argv[1], Path(sys.argv[2])
    saved = asyncio.run(main(phase, json.loads(state.read_text()) if phase == "resume" else {}))
    state.write_text(json.dumps(saved))
    Path(sys.argv[3]).write_text(
        json.dumps(
            [
                {
                    "name": span.name,
                    "trace_id": span.context.trace_id,
                    "span_id": span.context.span_id,
                    "parent_id": None if span.parent is None else span.parent.span_id,
                    "attributes": dict(span.attributes or {}),
                }
                for span in exporter.get_finished_spans()
            ]
        )
    )
