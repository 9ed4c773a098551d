"""Many agents, one SummaryTokenMemory: a Workflow runs a Team of 20 agents over one long conversation.

Every agent's history overflows the memory's budget at the same moment, yet the memory asks its
model for exactly one summary: the first caller summarizes, the others wait and reuse it.
Offline: every model here is scripted.
"""

from __future__ import annotations

import anyio

from gecko import AgentBuilder, Message, Team, Workflow
from gecko.compose.nodes import NodeContext
from gecko.core.memory import SummaryTokenMemory
from gecko.testing.models import ScriptedModel

AGENTS = 20


def long_conversation(turns: int = 40) -> list[Message]:
    messages: list[Message] = []
    for turn in range(turns):
        messages.append(Message.user(f"Turn {turn}: here are more figures for the quarterly report, " + "data " * 30))
        messages.append(Message.assistant(f"Noted turn {turn}; the figures look consistent. " + "ok " * 30))
    messages.append(Message.user("Given everything so far, what is your one-line conclusion?"))
    return messages


async def main() -> None:
    summarizer = ScriptedModel(["The user shared 40 turns of consistent quarterly figures."], delay=0.2)
    memory = SummaryTokenMemory(summarizer, max_tokens=1500)
    analysts = [
        AgentBuilder()
        .with_model(ScriptedModel([f"Analyst {index}: the quarter is solid."], delay=0.05, cycle=True))
        .with_system_prompt("You are a financial analyst. Answer in one line.")
        .with_memory(memory)
        .build()
        for index in range(AGENTS)
    ]
    panel = Team(analysts, name="analyst_panel", max_concurrent=AGENTS)

    async def load(ctx: NodeContext) -> list[Message]:
        return long_conversation()

    async def report(ctx: NodeContext) -> str:
        results = ctx.get_last_output()
        answered = sum(result.is_success for result in results)
        return f"{answered}/{len(results)} analysts answered; first: {results[0].value}"

    workflow = Workflow("concurrent_demo")
    workflow.add_node("load", load)
    workflow.add_node("panel", panel)
    workflow.add_node("report", report)
    workflow.add_edge("load", "panel")
    workflow.add_edge("panel", "report")
    workflow.set_entry_point("load")

    result = await workflow.execute()

    print(result.output)
    print(f"summarization requests that reached the model: {len(summarizer.requests)}")
    print(f"summaries made by the memory: {memory.summarizations}")


if __name__ == "__main__":
    anyio.run(main)
