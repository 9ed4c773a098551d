"""Definitions built in Python, written out as YAML and loaded back, are equal (workflows: an equal plan)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from gecko_config_yaml import DefinitionError, build, definition_from_workflow, dump_definition, parse_definition
from gecko_config_yaml.models import (
    AgentDefinition,
    ModelDefinition,
    PromptReference,
    SummaryMemoryDefinition,
    TeamDefinition,
)

from gecko.compose.workflow import CheckpointStrategy, Workflow


def _python_workflow() -> Workflow:
    steps = importlib.import_module("review_steps")
    wf = Workflow(
        "review",
        checkpoint_strategy=CheckpointStrategy.ASYNC,
        allow_cycles=True,
        max_steps=50,
        history_limit=200,
        merge_rules={"notes": "append"},
    )
    for name in ("start", "left", "right", "join", "review", "too_short", "revise", "approve"):
        wf.add_node(name, getattr(steps, name), timeout=30.0 if name == "approve" else None)
    wf.add_edge("start", "left").add_edge("start", "right")
    wf.add_edge("left", "join").add_edge("right", "join")
    wf.add_edge("join", "review", steps.is_long).add_edge("join", "too_short", steps.is_short)
    wf.add_edge("revise", "approve").add_edge("approve", "start", steps.is_short)  # a loop back
    return wf.set_entry_point("start")


async def test_python_to_yaml_to_python_keeps_the_plan(flow_dir: Path) -> None:
    original = _python_workflow()
    text = dump_definition(definition_from_workflow(original, storage="sqlite:///./rt.db"))
    assert "!!" not in text
    source = parse_definition(text, "rt.yaml")
    assert dump_definition(source.definition) == text
    async with build(source) as loaded:
        assert isinstance(loaded, Workflow)
        assert loaded.compile() == original.compile()
        # The same drawing; edges may be listed in another order (grouped by source).
        assert sorted(loaded.to_mermaid().splitlines()) == sorted(original.to_mermaid().splitlines())
        assert loaded.compile().jump_edges() == [("review", "revise")]
        assert (loaded.timeout, loaded.enable_parallel, loaded.scheduling) == (None, True, "eager")


def test_a_local_function_cannot_be_written(flow_dir: Path) -> None:
    def local(ctx: object) -> None:
        return None

    wf = Workflow("w").add_node("a", local).set_entry_point("a")
    with pytest.raises(DefinitionError, match=r"nodes\.a: .*no import path"):
        definition_from_workflow(wf)


def test_a_custom_merge_function_cannot_be_written(flow_dir: Path) -> None:
    steps = importlib.import_module("review_steps")
    wf = Workflow("w", merge_rules={"n": max}).add_node("a", steps.start).set_entry_point("a")
    with pytest.raises(DefinitionError, match=r"merge_rules\.n"):
        definition_from_workflow(wf)


def test_agent_and_team_definitions_built_in_python_come_back_equal() -> None:
    writer = AgentDefinition(
        name="writer",
        model=ModelDefinition(spec="scripted:w", settings={"replies": ["draft"]}),
        system_prompt=PromptReference(registry="my_app.prompts:registry", name="writer", version=2),
        tools=["my_app.tools:search"],
        memory=SummaryMemoryDefinition(type="summary", model="scripted:s", max_tokens=500),
        output_type="my_app.types:Draft",
    )
    team = TeamDefinition(name="desk", members=[writer, "my_app.agents:editor"], strategy="race", max_concurrent=2)
    for definition in (writer, team):
        assert parse_definition(dump_definition(definition)).definition == definition
