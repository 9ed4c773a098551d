"""Output guards: secrets and configured PII are redacted from model output and tool arguments."""

from __future__ import annotations

import json

from gecko_guardrails import Guardrails

from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import ToolCall

KEY = "sk-" + "a1B2c3D4e5F6g7H8i9J0"


async def test_secrets_are_redacted_from_the_final_answer(guardrails: Guardrails) -> None:
    output = await Agent(ScriptedModel([f"Your key is {KEY}, keep it safe."])).run("key?")
    assert output.content == "Your key is [REDACTED], keep it safe."
    assert KEY not in output.messages[-1].text


async def test_secrets_and_pii_are_redacted_from_tool_arguments_as_valid_json(guardrails: Guardrails) -> None:
    guardrails.pii = ("email",)
    received: list[str] = []

    @tool
    async def post(body: str) -> str:
        """Post a message."""
        received.append(body)
        return "posted"

    arguments = json.dumps({"body": f'mail ann@corp.test, token "{KEY}"'})
    model = ScriptedModel([tool_calls_reply(ToolCall(id="c1", name="post", arguments=arguments)), "ok"])
    await Agent(model, tools=[post]).run("post it")
    assert received == ['mail [REDACTED], token "[REDACTED]"']


async def test_redaction_can_be_turned_off(guardrails: Guardrails) -> None:
    guardrails.redact_output = False
    output = await Agent(ScriptedModel([f"key {KEY}"])).run("key?")
    assert output.content == f"key {KEY}"


async def test_arguments_nested_deeper_than_python_recurses_are_redacted_as_text(guardrails: Guardrails) -> None:
    deep = "[" * 100_000 + f'"{KEY}"' + "]" * 100_000
    received: list[str] = []

    @tool
    async def post(body: str) -> str:
        """Post a message."""
        received.append(body)
        return "posted"

    model = ScriptedModel([tool_calls_reply(ToolCall(id="c1", name="post", arguments=deep)), "ok"])
    output = await Agent(model, tools=[post]).run("post it")
    assert received == []  # not valid arguments for `post`: the engine refuses them
    assert KEY not in output.messages[1].tool_calls[0].arguments
