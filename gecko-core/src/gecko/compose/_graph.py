"""The compiled form of a workflow graph: validation, forward edges, back edges, layers, regions."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gecko.compose.nodes import Step
from gecko.errors import WorkflowDefinitionError

__all__ = ("ASYNC", "SYNC", "AGENT", "WORKFLOW", "NodeSpec", "Plan", "compile_plan", "node_kind")

ASYNC, SYNC, AGENT, WORKFLOW = 0, 1, 2, 3

Condition = Callable[[Any], Any]


@dataclass(slots=True)
class NodeSpec:
    """One node: how to call it, its timeout and the state keys it declares."""

    name: str
    target: Any
    kind: int
    timeout: float | None
    writes: frozenset[str]


def node_kind(target: Any) -> tuple[int, Any, float | None, frozenset[str]]:
    """Classify a node target: (kind, callable or object, timeout, declared writes)."""
    from gecko.compose.workflow import Workflow

    if isinstance(target, Step):
        return (ASYNC if target.is_async else SYNC), target.fn, target.timeout, target.writes
    if isinstance(target, Workflow):
        return WORKFLOW, target, None, frozenset()
    run = getattr(target, "run", None)
    if not inspect.isroutine(target) and run is not None and inspect.iscoroutinefunction(run):
        return AGENT, target, None, frozenset()
    if callable(target):
        is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)  # noqa: B004 - async callable objects
        )
        return (ASYNC if is_async else SYNC), target, None, frozenset()
    raise WorkflowDefinitionError(
        f"a node must be a function, a @step, an object with `async run(input)` or a Workflow; got {target!r}"
    )


@dataclass
class Plan:
    """A validated graph. Forward edges form a DAG; back edges (only with `allow_cycles`) re-arm loops."""

    entry: str
    nodes: dict[str, NodeSpec]
    index: dict[str, int]
    forward: dict[str, list[tuple[str, Condition | None]]]
    back: dict[str, list[tuple[str, Condition | None]]]
    indegree: dict[str, int]
    layers: list[list[str]]
    rank: dict[str, int]
    async_conditions: bool
    _regions: dict[str, tuple[list[str], frozenset[str]]] = field(default_factory=dict)

    def region(self, start: str) -> tuple[list[str], frozenset[str]]:
        """`start` and every node forward-reachable from it (cached)."""
        found = self._regions.get(start)
        if found is None:
            seen = {start}
            order = [start]
            for name in order:
                for dst, _ in self.forward[name]:
                    if dst not in seen:
                        seen.add(dst)
                        order.append(dst)
            found = self._regions[start] = (order, frozenset(seen))
        return found


def compile_plan(
    entry: str | None,
    nodes: Mapping[str, NodeSpec],
    edges: list[tuple[str, str, Condition | None]],
    *,
    allow_cycles: bool,
    merge_keys: frozenset[str],
) -> Plan:
    """Validate the graph and build its plan.

    Raises:
        WorkflowDefinitionError: no entry point, an unknown or unreachable node, a cycle without
            `allow_cycles`, or two parallel nodes declaring the same key without a merge rule.
    """
    if not nodes:
        raise WorkflowDefinitionError("the workflow has no nodes; add some with add_node(name, fn)")
    if entry is None:
        raise WorkflowDefinitionError("the workflow has no entry point; call set_entry_point(name)")
    if entry not in nodes:
        raise WorkflowDefinitionError(f"entry point {entry!r} is not a node; known nodes: {sorted(nodes)}")
    successors: dict[str, list[tuple[str, Condition | None]]] = {name: [] for name in nodes}
    for src, dst, condition in edges:
        for end in (src, dst):
            if end not in nodes:
                raise WorkflowDefinitionError(
                    f"edge {src!r} -> {dst!r} names unknown node {end!r}; add it with add_node first"
                )
        successors[src].append((dst, condition))

    forward: dict[str, list[tuple[str, Condition | None]]] = {name: [] for name in nodes}
    back: dict[str, list[tuple[str, Condition | None]]] = {name: [] for name in nodes}
    # Iterative DFS from the entry: an edge into a node still on the stack closes a cycle.
    on_stack: set[str] = set()
    visited: set[str] = set()
    stack: list[tuple[str, int]] = [(entry, 0)]
    path: list[str] = [entry]
    on_stack.add(entry)
    visited.add(entry)
    while stack:
        name, position = stack[-1]
        out = successors[name]
        if position == len(out):
            stack.pop()
            path.pop()
            on_stack.discard(name)
            continue
        stack[-1] = (name, position + 1)
        dst, condition = out[position]
        if dst in on_stack:
            if not allow_cycles:
                cycle = [*path[path.index(dst) :], dst]
                raise WorkflowDefinitionError(
                    f"the graph has a cycle {' -> '.join(cycle)}; pass allow_cycles=True (and a max_steps bound)"
                )
            back[name].append((dst, condition))
            continue
        forward[name].append((dst, condition))
        if dst not in visited:
            visited.add(dst)
            on_stack.add(dst)
            path.append(dst)
            stack.append((dst, 0))
    unreachable = [name for name in nodes if name not in visited]
    if unreachable:
        raise WorkflowDefinitionError(
            f"nodes {unreachable} cannot be reached from entry point {entry!r}; add edges to them or remove them"
        )

    indegree = dict.fromkeys(nodes, 0)
    for out in forward.values():
        for dst, _ in out:
            indegree[dst] += 1
    index = {name: position for position, name in enumerate(nodes)}
    layers: list[list[str]] = []
    remaining = dict(indegree)
    current = [name for name in nodes if remaining[name] == 0]
    while current:
        layers.append(current)
        following: list[str] = []
        for name in current:
            for dst, _ in forward[name]:
                remaining[dst] -= 1
                if remaining[dst] == 0:
                    following.append(dst)
        current = sorted(following, key=index.__getitem__)
    conditions = [condition for out in successors.values() for _, condition in out if condition is not None]
    plan = Plan(
        entry=entry,
        nodes=dict(nodes),
        index=index,
        forward=forward,
        back=back,
        indegree=indegree,
        layers=layers,
        rank={name: position for position, name in enumerate(name for layer in layers for name in layer)},
        async_conditions=any(inspect.iscoroutinefunction(condition) for condition in conditions),
    )
    _check_declared_writes(plan, merge_keys)
    return plan


def _check_declared_writes(plan: Plan, merge_keys: frozenset[str]) -> None:
    declaring = [spec for spec in plan.nodes.values() if spec.writes - merge_keys]
    for position, first in enumerate(declaring):
        for second in declaring[position + 1 :]:
            shared = (first.writes & second.writes) - merge_keys
            if not shared:
                continue
            if second.name in plan.region(first.name)[1] or first.name in plan.region(second.name)[1]:
                continue
            key = sorted(shared)[0]
            raise WorkflowDefinitionError(
                f"parallel nodes {first.name!r} and {second.name!r} both write state key {key!r}; "
                f"declare a merge rule for it (merge_rules={{{key!r}: 'append'}}) or order the nodes with an edge"
            )
