"""The definition format: pydantic models, whose JSON Schema is published as `definition.schema.json`.

A file holds one definition, told apart by `kind`: `agent`, `workflow` or `team`. Code (tools,
node functions, conditions, output types) is named by import path, `module:attribute`; nothing
in a file is executed or constructed except through those paths.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

__all__ = (
    "WORKFLOW_SETTINGS",
    "AgentDefinition",
    "Definition",
    "DefinitionFile",
    "EdgeDefinition",
    "ImportPath",
    "ModelDefinition",
    "NodeDefinition",
    "PromptReference",
    "SummaryMemoryDefinition",
    "TeamDefinition",
    "TokenMemoryDefinition",
    "WorkflowDefinition",
)

ImportPath = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
        description="Python object by import path, `module:attribute` (e.g. `my_app.tools:search`).",
        examples=["my_app.steps:fetch"],
    ),
]


class _Strict(BaseModel):
    # strict: YAML already gives typed values, so `'5'` for a count or `1` for a flag is a mistake to report
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelDefinition(_Strict):
    """A chat model by `provider:model` spec, with settings passed to the provider class."""

    spec: str = Field(description="`provider:model`, e.g. `openai:gpt-4o-mini` or `scripted:demo`.")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the provider's model class (no secrets: use env)."
    )


class PromptReference(_Strict):
    """A system prompt taken from a `PromptRegistry` and rendered with `values`."""

    registry: ImportPath = Field(description="The `PromptRegistry` by import path.")
    name: str
    version: str | int | None = Field(default=None, description="Registered version; the latest when omitted.")
    values: dict[str, str] = Field(default_factory=dict, description="Template placeholders and their text.")


class TokenMemoryDefinition(_Strict):
    """`TokenMemory`: the newest turns that fit in `max_tokens`."""

    type: Literal["token"] = "token"
    max_tokens: int = Field(default=4000, gt=0)
    tokenizer_model: str = Field(default="gpt-4o-mini", description="The model whose tokenizer counts.")


class SummaryMemoryDefinition(_Strict):
    """`SummaryTokenMemory`: older turns folded into a summary written by `model`."""

    type: Literal["summary"]
    model: str | ModelDefinition = Field(description="The summarizing model.")
    max_tokens: int = Field(default=4000, gt=0)
    keep_ratio: float = Field(default=0.5, gt=0, lt=1)


class AgentDefinition(_Strict):
    """An agent: model, prompt, tools, memory and output type."""

    kind: Literal["agent"] = "agent"
    name: str = "agent"
    model: str | ModelDefinition = Field(description="`provider:model` spec, or a spec with settings.")
    system_prompt: str | PromptReference | None = None
    tools: list[ImportPath] = Field(default_factory=list, description="Tools (`@tool` or plain functions).")
    memory: Annotated[TokenMemoryDefinition | SummaryMemoryDefinition, Field(discriminator="type")] | None = None
    output_type: ImportPath | None = Field(default=None, description="A pydantic model or type for `output.data`.")
    max_turns: int = Field(default=10, gt=0)
    storage: str | None = Field(default=None, description="Storage URL keeping sessions and paused runs.")
    session_id: str | None = None


class TeamDefinition(_Strict):
    """Members run concurrently on one input: all of them, or a race to the first success."""

    kind: Literal["team"] = "team"
    name: str = "team"
    members: list[ImportPath | AgentDefinition | TeamDefinition | WorkflowDefinition] = Field(
        min_length=1, description="Members by import path, or inline agents, teams and workflows."
    )
    strategy: Literal["all", "race"] = "all"
    max_concurrent: int | None = Field(default=None, gt=0)
    input_mapper: ImportPath | None = Field(default=None, description="`fn(raw_input, member_index)`.")


class NodeDefinition(_Strict):
    """One workflow node: exactly one of `call`, `agent`, `team`, `workflow`."""

    call: ImportPath | None = Field(
        default=None, description="A function `fn(ctx)`, a `@step`, or an agent/team/workflow object."
    )
    agent: AgentDefinition | None = None
    team: TeamDefinition | None = None
    workflow: WorkflowDefinition | None = None
    timeout: float | None = Field(default=None, gt=0)
    writes: list[str] = Field(default_factory=list, description="State keys the node writes.")
    jumps: list[str] = Field(default_factory=list, description="Nodes this node may return `Next` to.")

    @model_validator(mode="after")
    def _one_target(self) -> NodeDefinition:
        given = [name for name in ("call", "agent", "team", "workflow") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a node needs exactly one of call, agent, team, workflow; got {given or 'none'}")
        return self


class EdgeDefinition(_Strict):
    """`source` runs before `target`; with `when`, only if `when(ctx)` is true."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    when: ImportPath | None = Field(default=None, description="Condition `fn(ctx) -> bool` (sync or async).")


class WorkflowDefinition(_Strict):
    """A workflow graph with its run settings."""

    kind: Literal["workflow"] = "workflow"
    name: str
    entry: str = Field(description="The node a run starts with.")
    nodes: dict[str, NodeDefinition] = Field(min_length=1)
    edges: list[EdgeDefinition] = Field(default_factory=list)
    checkpoint: Literal["always", "async", "final", "manual"] = Field(
        default="always", description="What a crash may re-run: see the durability table."
    )
    storage: str | None = Field(default=None, description="Checkpoint storage URL, e.g. `sqlite:///./flow.db`.")
    enable_parallel: bool = True
    allow_cycles: bool = False
    max_steps: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    history_limit: int = Field(default=1000, gt=0)
    scheduling: Literal["eager", "layered"] = "eager"
    merge_rules: dict[str, Literal["append", "add", "merge"] | ImportPath] = Field(
        default_factory=dict, description="State key -> `append`, `add`, `merge` or `fn(current, contribution)`."
    )


WORKFLOW_SETTINGS = ("enable_parallel", "allow_cycles", "max_steps", "timeout", "history_limit", "scheduling")
"""`WorkflowDefinition` fields that are `Workflow` keyword arguments (and attributes) of the same name."""

Definition = Annotated[AgentDefinition | WorkflowDefinition | TeamDefinition, Field(discriminator="kind")]


class DefinitionFile(RootModel[Definition]):
    """A Gecko definition file: an agent, a workflow or a team, told apart by `kind`."""
