"""Validation and building: errors name file, line and field; the schema file is the generated one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gecko_config_yaml import DefinitionError, build, load_definition, parse_definition
from gecko_config_yaml.models import WorkflowDefinition
from gecko_config_yaml.schema import SCHEMA_PATH, render

from gecko.compose.team import Team
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.core.agent import Agent
from gecko.testing.models import ScriptedModel


def test_the_published_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), "run: python -m gecko_config_yaml.schema"


def test_the_schema_tells_the_kinds_apart() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["discriminator"]["mapping"]) == {"agent", "workflow", "team"}
    assert schema["$defs"]["WorkflowDefinition"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        (
            "kind: workflow\nname: w\nentry: a\nnodes:\n  a: {call: m:f}\ncheckpoint: sometimes\n",
            "6: checkpoint",
            "Input should be",
        ),
        (
            "kind: workflow\nname: w\nentry: a\nnodes:\n  a: {call: m:f, colour: red}\n",
            "5: nodes.a.colour",
            "Extra inputs",
        ),
        ("kind: workflow\nname: w\nentry: a\nnodes:\n  a: {call: 'not a path'}\n", "5: nodes.a.call", "pattern"),
        ("kind: workflow\nname: w\nentry: a\nnodes:\n  a: {}\n", "5: nodes.a", "exactly one of call"),
        ("kind: robot\n", "1: kind", "does not match any of the expected tags"),
        ("kind: agent\nname: x\n", "1: model", "Field required"),
        ("kind: team\nmembers: []\n", "2: members", "at least 1 item"),
    ],
)
def test_schema_errors_name_file_line_and_field(text: str, where: str, reason: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text, "flow.yaml")
    assert str(caught.value).startswith(f"flow.yaml:{where}"), str(caught.value)
    assert reason in caught.value.reason


async def test_build_errors_name_file_line_and_field(flow_dir: Path) -> None:
    text = (flow_dir / "flow.yaml").read_text()
    cases = {
        "  join: {call: review_steps:join}\n": (
            "  join: {call: review_steps:jion}\n",
            12,
            "nodes.join.call",
            "no attribute path",
        ),
        "  join: {call: review_steps:join}\n ": (
            "  join: {call: no_such_module:join}\n ",
            12,
            "nodes.join.call",
            "cannot import",
        ),
        "- {from: revise, to: approve}": ("- {from: revise, to: aprove}", 24, "edges[6].to", "no node named 'aprove'"),
        "when: review_steps:is_long}": ("when: review_steps.is_long:x}", 22, "edges[4].when", "cannot import"),
        "entry: start": ("entry: begin", 5, "entry", "no node named 'begin'"),
        "storage: sqlite:///./review.db": ("storage: nosuch:///x", 6, "storage", "nosuch"),
    }
    for original, (replacement, line, field, reason) in cases.items():
        broken = flow_dir / "broken.yaml"
        broken.write_text(text.replace(original, replacement, 1))
        with pytest.raises(DefinitionError) as caught:
            async with build(load_definition(broken)):
                pass
        assert (caught.value.file, caught.value.line, caught.value.field) == (str(broken), line, field), caught.value
        assert reason in caught.value.reason


async def test_a_cycle_without_allow_cycles_is_a_definition_error(flow_dir: Path) -> None:
    text = (flow_dir / "flow.yaml").read_text() + "  - {from: join, to: start}\n"
    with pytest.raises(DefinitionError, match=r"flow\.yaml:3: the graph has a cycle start -> left -> join -> start"):
        async with build(parse_definition(text, "flow.yaml")):
            pass


async def test_a_workflow_definition_builds_the_workflow(flow_dir: Path) -> None:
    async with build(load_definition(flow_dir / "flow.yaml")) as workflow:
        assert isinstance(workflow, Workflow)
        assert workflow.checkpoint_strategy is CheckpointStrategy.ALWAYS
        assert workflow.storage is not None
        result = await workflow.execute("gecko", session_id="in-process")
        assert result.paused
        assert result.interrupted_node == "approve"
        resumed = await workflow.resume("in-process", "ok")
    assert resumed.output == "GECKO:5! revised / ok"
    assert "too_short" not in resumed.history


def test_a_missing_file_is_a_definition_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read the file"):
        load_definition(tmp_path / "absent.yaml")


def test_bytes_that_are_not_utf8_are_refused_at_their_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("kind: workflow\nname: café\n".encode("latin-1"))
    with pytest.raises(DefinitionError, match=r"latin1\.yaml:2: not UTF-8: byte 0xe9"):
        load_definition(latin1)


AGENT = """\
kind: agent
name: adder
model:
  spec: scripted:demo
  settings:
    replies:
      - [[add, '{"a": 2, "b": 40}']]
      - '{"total": 42}'
system_prompt: {registry: agent_parts:prompts, name: careful, values: {topic: sums}}
tools: [agent_parts:add]
memory: {type: token, max_tokens: 2000}
output_type: agent_parts:Total
"""

AGENT_PARTS = '''
from pydantic import BaseModel

from gecko.core.prompt import PromptRegistry
from gecko.core.toolbox import tool

prompts = PromptRegistry()
prompts.register("careful", "You check {topic} twice.")


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Total(BaseModel):
    total: int
'''


async def test_an_agent_definition_builds_a_working_agent(flow_dir: Path) -> None:
    (flow_dir / "agent_parts.py").write_text(AGENT_PARTS)
    async with build(parse_definition(AGENT)) as agent:
        assert isinstance(agent, Agent)
        output = await agent.run("What is 2 + 40?")
    assert output.data.total == 42
    assert isinstance(agent.model, ScriptedModel)
    first_request = agent.model.requests[0]
    assert first_request.messages[0].content == "You check sums twice."
    assert [definition.name for definition in first_request.tools] == ["add"]
    assert [message.role for message in output.messages].count("tool") == 1


TEAM = """\
kind: team
name: board
strategy: race
members:
  - {kind: agent, name: slow, model: {spec: scripted:a, settings: {replies: [slow], delay: 5}}}
  - {kind: agent, name: fast, model: {spec: scripted:b, settings: {replies: [fast]}}}
"""


async def test_a_team_definition_builds_a_racing_team() -> None:
    async with build(parse_definition(TEAM)) as team:
        assert isinstance(team, Team)
        results = await team.run("go")
    winner = results[0]
    assert winner.is_success
    assert winner.member_index == 1
    assert winner.result.content == "fast"


def test_node_forms_are_exclusive() -> None:
    with pytest.raises(DefinitionError, match="exactly one of call, agent, team, workflow; got"):
        parse_definition("kind: workflow\nname: w\nentry: a\nnodes:\n  a: {call: m:f, agent: {model: 'scripted:x'}}\n")


def test_inline_agents_and_nested_workflows_validate() -> None:
    definition = parse_definition(
        "kind: workflow\nname: w\nentry: a\nnodes:\n"
        "  a: {agent: {model: 'scripted:x'}}\n"
        "  b: {workflow: {name: inner, entry: c, nodes: {c: {call: m:f}}}}\n"
    ).definition
    assert isinstance(definition, WorkflowDefinition)
    assert definition.nodes["b"].workflow is not None


async def test_provider_settings_errors_point_at_the_model() -> None:
    text = "kind: agent\nmodel:\n  spec: scripted:x\n  settings: {replies: [a], colour: red}\n"
    with pytest.raises(DefinitionError) as caught:
        async with build(parse_definition(text, "a.yaml")):
            pass
    assert (caught.value.line, caught.value.field) == (2, "model")
    assert str(caught.value).count("a.yaml") == 1  # located once, not wrapped twice
    assert "colour" in caught.value.reason
