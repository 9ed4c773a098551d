"""A durable two-step workflow plus a loop: checkpointed to SQLite, resumable by session id.

Run it twice: the second run finds the completed session and returns its stored result.
Needs `pip install gecko-ai-storage-sqlite`; no network, no model.
"""

from __future__ import annotations

import anyio

from gecko.compose.nodes import Next, NodeContext, step
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.errors import CheckpointError
from gecko.plugins.storage.factory import create_storage


@step("Step1")
async def step_one(ctx: NodeContext) -> str:
    print("Executing Step 1...")
    return "Data from Step 1"


@step("Step2")
async def step_two(ctx: NodeContext) -> str:
    print(f"Executing Step 2 with {ctx.get_last_output()}")
    return "Finish"


@step
async def refine(ctx: NodeContext) -> object:
    rounds = ctx.state.get("rounds", 0) + 1
    if rounds < 3:
        # Jump back to this node; input=None keeps the current last output.
        return Next(node="refine", update_state={"rounds": rounds})
    ctx.state["rounds"] = rounds
    return f"refined {ctx.get_last_output()!r} in {rounds} rounds"


async def main() -> None:
    storage = await create_storage("sqlite:///./workflow.db")
    async with storage:
        wf = Workflow("MyFlow", storage=storage, checkpoint_strategy=CheckpointStrategy.ALWAYS, enable_parallel=True)
        wf.add_node("A", step_one)
        wf.add_node("B", step_two)
        wf.add_edge("A", "B")
        wf.set_entry_point("A")

        session_id = "uniq_session_id"
        # A crashed run with this session id resumes where it stopped; a finished one is returned as stored.
        try:
            res = await wf.resume(session_id)
            print("Resumed:", res)
        except CheckpointError:  # no checkpoint yet: first run
            res = await wf.execute("init_input", session_id=session_id)
            print("Result:", res)

        loop = Workflow("Refine", storage=storage, allow_cycles=True, max_steps=10)
        loop.add_node("refine", refine).set_entry_point("refine")
        print((await loop.execute("draft")).output)


if __name__ == "__main__":
    anyio.run(main)
