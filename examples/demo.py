"""Gecko's demo: a durable workflow whose nodes are teams of agents sharing one summary memory.

    brief ──▶ panel (Team ALL: three experts, one shared SummaryTokenMemory)
          ──▶ headline (Team RACE: two writers, the first answer wins)
          ──▶ approve (human in the loop: the run pauses here)
          ──▶ report

Everything is checkpointed to SQLite after every node. The run pauses at `approve`; a second
process rebuilds the workflow, resumes it from the checkpoint with the human's answer, and
nothing that already completed runs again.

Offline by default: a real language model (SmolLM2-135M, a very small model, so expect weak
answers) runs in-process through gecko-ai-models-llamacpp. With OPENAI_API_KEY or ZHIPU_API_KEY set,
the same demo talks to that provider through gecko-ai-models instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from gecko import AgentBuilder, ExecutionStrategy, MemberResult, Message, Team, Workflow
from gecko.compose.nodes import NodeContext, interrupt
from gecko.compose.workflow import CheckpointStrategy
from gecko.core.memory import SummaryTokenMemory
from gecko.plugins.models import ChatModel
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage

TOPIC = "Should a small team adopt an async-first Python agent framework?"
EXPERTS = {
    "optimist": "You are an optimistic engineer. Give one short reason for.",
    "skeptic": "You are a careful skeptic. Give one short risk.",
    "pragmatist": "You are a pragmatic lead. Give one short next step.",
}


def pick_model() -> tuple[ChatModel, str]:
    """The provider named by an API key in the environment, else the local in-process model."""
    if os.environ.get("OPENAI_API_KEY"):
        from gecko.plugins.models import OpenAIChat

        return OpenAIChat(model="gpt-4o-mini", temperature=0.3), "OpenAI gpt-4o-mini"
    if os.environ.get("ZHIPU_API_KEY"):
        from gecko.plugins.models import ZhipuChat

        return ZhipuChat(model="glm-4-flash", temperature=0.3), "Zhipu glm-4-flash"
    from gecko_models_llamacpp import LlamaCppChat

    return LlamaCppChat(max_tokens=48, temperature=0.3, seed=7), "local SmolLM2-135M (in-process, llama.cpp)"


def meeting_notes() -> list[Message]:
    """A long earlier discussion: every expert's history overflows the memory at the same moment."""
    notes: list[Message] = []
    for turn in range(24):
        notes.append(Message.user(f"Meeting note {turn}: the team discussed deadlines, tests and on-call load."))
        notes.append(Message.assistant(f"Noted point {turn}: deadlines are tight and tests are slow."))
    notes.append(Message.user(f"In one sentence, what is your view on this question: {TOPIC}"))
    return notes


def build_workflow(model: ChatModel, memory: SummaryTokenMemory, storage: Storage, ran: list[str]) -> Workflow:
    """The same definition serves the first run and the resumed one; `ran` collects node executions."""
    panel = Team(
        [
            AgentBuilder().with_model(model).with_system_prompt(prompt).with_memory(memory).build()
            for prompt in EXPERTS.values()
        ],
        name="panel",
    )
    writers = Team(
        [
            AgentBuilder().with_model(model).with_system_prompt(f"You write {style} headlines. One line.").build()
            for style in ("bold", "calm")
        ],
        name="headline",
        strategy=ExecutionStrategy.RACE,
    )

    async def brief(ctx: NodeContext) -> list[dict[str, Any]]:
        return [message.model_dump(mode="json") for message in meeting_notes()]

    async def ask_panel(ctx: NodeContext) -> list[str]:
        history = [Message.model_validate(item) for item in ctx.get_last_output()]
        results: list[MemberResult] = await panel.run(history)
        for name, result in zip(EXPERTS, results, strict=True):
            answer = str(result.result).strip() if result.is_success else f"[failed: {result.error}]"
            print(f"  panel · {name:<10} {result.status.value:<9} {answer[:110]!r}")
        return [str(result.result) for result in results if result.is_success]

    async def write_headline(ctx: NodeContext) -> str:
        results = await writers.run(f"Write a headline of at most eight words about: {TOPIC}")
        winner = results[0]
        print(f"  race  · winner: writer {winner.member_index} ({winner.status.value}) of {len(results)}")
        return str(winner.result).strip().splitlines()[0][:120] if winner.is_success else TOPIC

    async def approve(ctx: NodeContext) -> str:
        decision = interrupt({"headline": ctx.get_last_output()})
        return f"{decision}: {ctx.history['headline']}"

    async def report(ctx: NodeContext) -> str:
        return str(ctx.get_last_output())

    workflow = Workflow("demo", storage=storage, checkpoint_strategy=CheckpointStrategy.ALWAYS)
    for name, function in (
        ("brief", brief),
        ("panel", ask_panel),
        ("headline", write_headline),
        ("approve", approve),
        ("report", report),
    ):
        workflow.add_node(name, _recorded(name, function, ran))
    workflow.add_edge("brief", "panel").add_edge("panel", "headline").add_edge("headline", "approve")
    workflow.add_edge("approve", "report").set_entry_point("brief")
    return workflow


def _recorded(name: str, function: Any, ran: list[str]) -> Any:
    async def node(ctx: NodeContext) -> Any:
        ran.append(name)
        return await function(ctx)

    return node


async def first_run(url: str, session_id: str) -> None:
    model, label = pick_model()
    print(f"model: {label}")
    if label.startswith("local"):
        print("note: a 135M-parameter model runs offline on any machine, and its answers are weak.")
    memory = SummaryTokenMemory(model, max_tokens=400)
    print(f"\n1) run until the approval step (checkpoints: {url})")
    ran: list[str] = []
    async with await create_storage(url) as storage:
        result = await build_workflow(model, memory, storage, ran).execute(TOPIC, session_id=session_id)
    await model.aclose()
    print(f"  executed: {', '.join(ran)}")
    print(f"  paused at {result.interrupted_node!r} waiting for a human: {result.interrupt}")
    print(f"  real summarizations by the shared memory: {memory.summarizations} (three experts, one summary)")


async def resume_run(url: str, session_id: str) -> None:
    model, _ = pick_model()
    memory = SummaryTokenMemory(model, max_tokens=400)
    ran: list[str] = []
    async with await create_storage(url) as storage:
        result = await build_workflow(model, memory, storage, ran).resume(session_id, "approved")
    await model.aclose()
    print(f"  executed: {', '.join(ran)} (completed nodes were not run again)")
    print(f"  status: {result.status}; final output: {result.output!r}")


async def main() -> None:
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="gecko-demo-"))
    url = f"sqlite:///{folder / 'demo.db'}"
    session_id = f"demo-{os.getpid()}-{int(time.time())}"
    await first_run(url, session_id)
    print("\n2) a new process reopens the checkpoint and resumes with the human's answer")
    resumed = await anyio.run_process([sys.executable, __file__, "--resume", url, session_id], stdout=None)
    if resumed.returncode:
        raise SystemExit(resumed.returncode)
    print(f"\ndone in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--resume"]:
        anyio.run(resume_run, sys.argv[2], sys.argv[3])
    else:
        anyio.run(main)
