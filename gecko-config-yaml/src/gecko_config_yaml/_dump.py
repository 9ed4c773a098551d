"""From a workflow built in Python to a definition, and from a definition to YAML text."""

from __future__ import annotations

import functools
import importlib
from typing import Any

import yaml

from gecko.compose.workflow import Workflow
from gecko_config_yaml.errors import DefinitionError
from gecko_config_yaml.models import (
    WORKFLOW_SETTINGS,
    Definition,
    EdgeDefinition,
    NodeDefinition,
    WorkflowDefinition,
)

__all__ = ("definition_from_workflow", "dump_definition")

_RULE_NAMES = ("append", "add", "merge")


def dump_definition(definition: Definition) -> str:
    """The definition as YAML text that `parse_definition` reads back to an equal definition."""
    data = definition.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return yaml.safe_dump({"kind": definition.kind, **data}, sort_keys=False, allow_unicode=True)


def definition_from_workflow(workflow: Workflow, *, storage: str | None = None) -> WorkflowDefinition:
    """The definition of a workflow built in Python, whose build compiles to an equal `Plan`.

    Every node, condition and merge function must be reachable by import path (a module-level
    function, `@step`, or object); `storage` is the checkpoint storage URL to write, since a
    storage object does not know its own.

    Raises:
        DefinitionError: a node, condition or merge rule cannot be named by import path.
    """
    plan = workflow.compile()
    nodes = {
        name: NodeDefinition(
            call=_import_path(spec.target, f"nodes.{name}"),
            timeout=spec.timeout,
            writes=sorted(spec.writes),
            jumps=sorted(spec.jumps),
        )
        for name, spec in plan.nodes.items()
    }
    edges = [
        EdgeDefinition(
            source=source,
            target=target,
            when=None if condition is None else _import_path(condition, f"edge {source} -> {target}"),
        )
        for source in plan.nodes
        for target, condition in (*plan.forward[source], *plan.back[source])
    ]
    return WorkflowDefinition(
        name=workflow.name,
        entry=plan.entry,
        nodes=nodes,
        edges=edges,
        checkpoint=workflow.checkpoint_strategy.value,
        storage=storage,
        merge_rules={key: _rule_name(key, rule) for key, rule in plan.rules.items()},
        **{setting: getattr(workflow, setting) for setting in WORKFLOW_SETTINGS},
    )


@functools.cache
def _builtin_rules() -> dict[Any, str]:
    """The engine's function for each named merge rule, read from a compiled probe workflow."""
    probe = Workflow("probe")
    for name in _RULE_NAMES:
        probe.set_merge_rule(name, name)  # type: ignore[arg-type]  # each is one of the Literal names
    probe.add_node("only", lambda ctx: None).set_entry_point("only")
    return {function: name for name, function in probe.compile().rules.items()}


def _rule_name(key: str, rule: Any) -> str:
    name = _builtin_rules().get(rule)
    if name is not None:
        return name
    raise DefinitionError(
        "<python>", None, f"merge_rules.{key}", "a merge function cannot be written out; use 'append', 'add' or 'merge'"
    )


def _import_path(target: Any, field: str) -> str:
    """`module:qualname` that resolves to `target` (or to the `@step` wrapping it)."""
    module_name = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if module_name and qualname and module_name != "__main__" and "<locals>" not in qualname:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is target or getattr(found, "fn", None) is target:
            return f"{module_name}:{qualname}"
    raise DefinitionError(
        "<python>",
        None,
        field,
        f"{target!r} has no import path: define it at module level in an importable module (not __main__)",
    )
