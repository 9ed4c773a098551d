"""A review board of three experts: a Team runs them at once and reports each outcome.

Offline by default (scripted models). Set GECKO_DEMO_MODEL to a model spec such as
"openai:gpt-4o-mini" (with gecko-ai-models installed and the provider's key set) to ask a real model.
"""

from __future__ import annotations

import os

import anyio

from gecko import AgentBuilder, MemberResult, Team
from gecko.compose.team import ExecutionStrategy
from gecko.plugins.models import ChatModel, ModelRequest, create_model
from gecko.testing.models import FunctionModel, Reply, ScriptedModel

EXPERTS = {
    "optimistic futurist": "Give one very optimistic prediction about AI.",
    "AI safety researcher": "Warn about the biggest risk AI brings.",
    "pragmatic engineer": "Judge what AI will really do in the next five years.",
}


def unavailable(request: ModelRequest) -> Reply:
    raise ConnectionError("the expert's provider is down")


def expert_model(role: str) -> ChatModel:
    spec = os.environ.get("GECKO_DEMO_MODEL")
    if spec:
        return create_model(spec)
    if role == "AI safety researcher":
        return FunctionModel(unavailable)  # shows a member failing without failing the team
    return ScriptedModel([f"As a {role}: AGI arrives step by step; plan for it."], delay=0.05, cycle=True)


def aggregate(results: list[MemberResult]) -> str:
    lines = []
    for result in results:
        if result.is_success:
            lines.append(f"expert {result.member_index + 1}: {result.value} ({result.latency * 1000:.0f} ms)")
        else:
            lines.append(f"expert {result.member_index + 1}: [absent] ({result.status.value}: {result.error})")
    return "\n".join(lines)


async def main() -> None:
    experts = [
        AgentBuilder()
        .with_model(expert_model(role))
        .with_system_prompt(f"You are a {role}. {task} Answer in under 50 words.")
        .build()
        for role, task in EXPERTS.items()
    ]
    topic = "How should we think about the arrival of AGI?"

    board = Team(experts, name="ai_review_board", max_concurrent=2)
    print(aggregate(await board.run(topic, timeout=30)))

    fastest = Team(experts, name="first_opinion", strategy=ExecutionStrategy.RACE)
    winner = (await fastest.run(topic, timeout=30))[0]
    print(f"\nfirst opinion (expert {winner.member_index + 1}): {winner.value}")


if __name__ == "__main__":
    anyio.run(main)
