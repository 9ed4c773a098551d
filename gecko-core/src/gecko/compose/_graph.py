"""The compiled form of a workflow graph: validation, forward edges, back edges, layers, regions.

`compile_plan` turns what the builder (`gecko.compose.workflow.Workflow`) collected into a frozen
`Plan`: the graph plus everything a run needs (merge rules, durability, limits), so the engine
(`gecko.compose._engine`) depends on this data and never on the builder.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gecko.compose.nodes import Step
from gecko.errors import WorkflowDefinitionError

__all__ = (
    "AGENT",
    "ASYNC",
    "SYNC",
    "WORKFLOW",
    "CheckpointStrategy",
    "NodeSpec",
    "Plan",
    "compile_plan",
    "node_kind",
    "unknown_node_hint",
)

ASYNC, SYNC, AGENT, WORKFLOW = 0, 1, 2, 3

Condition = Callable[[Any], Any]
DirectNode = tuple[Callable[..., Any], tuple[str, ...] | None, str | None]


class CheckpointStrategy(str, Enum):
    """When a workflow with storage makes its progress durable, named by what a crash may re-run.

    ALWAYS: every node's completion is durable before any of its successors starts and before
    `execute` returns (siblings finishing together share one write). A crash re-runs only the
    nodes that were running. ASYNC: completions are written behind the nodes, at most
    `max_lag` records behind (a node waits when the writer is that far back); a crash may also
    re-run up to `max_lag` completed nodes, and their successors may have started. FINAL: one
    write at the end, and when the run pauses, fails or times out; a crash re-runs the whole
    run. MANUAL: a write only when a node calls `ctx.request_checkpoint()` and when the run
    pauses; a crash re-runs everything after the last such write.
    """

    ALWAYS = "always"
    ASYNC = "async"
    FINAL = "final"
    MANUAL = "manual"


def unknown_node_hint(name: str, known: Any) -> str:
    """`did you mean ...?` for a mistyped node name, else the known names."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {close[0]!r}?" if close else f"known nodes: {sorted(known)}"


@dataclass(slots=True)
class NodeSpec:
    """One node: how to call it, its timeout and the state keys it declares."""

    name: str
    target: Any
    kind: int
    timeout: float | None
    writes: frozenset[str]
    jumps: frozenset[str] = frozenset()


def node_kind(target: Any) -> tuple[int, Any, float | None, frozenset[str], frozenset[str]]:
    """Classify a node target: (kind, callable or object, timeout, declared writes, declared jumps)."""
    if isinstance(target, Step):
        return (ASYNC if target.is_async else SYNC), target.fn, target.timeout, target.writes, target.jumps
    none: frozenset[str] = frozenset()
    # A nested workflow is recognised by shape, so the graph never imports the builder.
    execute = getattr(target, "execute", None)
    if (
        not inspect.isroutine(target)
        and callable(getattr(target, "compile", None))
        and inspect.iscoroutinefunction(execute)
    ):
        return WORKFLOW, target, None, none, none
    run = getattr(target, "run", None)
    if not inspect.isroutine(target) and run is not None and inspect.iscoroutinefunction(run):
        return AGENT, target, None, none, none
    if callable(target):
        is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)  # noqa: B004 - async callable objects
        )
        return (ASYNC if is_async else SYNC), target, None, none, none
    raise WorkflowDefinitionError(
        f"a node must be a function, a @step, an object with `async run(input)` or a Workflow; got {target!r}"
    )


@dataclass(frozen=True)
class Plan:
    """A validated graph and the settings of its runs; built once by `compile_plan`, never changed.

    Forward edges form a DAG; back edges (only with `allow_cycles`) re-arm loops. Nodes that no
    edge from the entry point reaches are jump targets: they run only when a node returns
    `Next(node)`.
    """

    name: str
    entry: str
    nodes: Mapping[str, NodeSpec]
    index: Mapping[str, int]
    forward: Mapping[str, list[tuple[str, Condition | None]]]
    back: Mapping[str, list[tuple[str, Condition | None]]]
    predecessors: Mapping[str, list[str]]
    indegree: Mapping[str, int]
    layers: list[list[str]]
    rank: Mapping[str, int]
    async_conditions: bool
    rules: Mapping[str, Callable[[Any, Any], Any]]
    allow_cycles: bool
    max_steps: int | None
    history_limit: int
    strategy: CheckpointStrategy
    max_lag: int
    # The graph's nodes, entry point and edges, digested: a snapshot records it, and a resume by a
    # workflow of another shape would wait on edges that are gone or miss new ones.
    shape: str
    # Nodes whose edges all go forward without a condition: completing one needs no await.
    unconditional: frozenset[str] = frozenset()
    # Async function nodes without a timeout: a worker awaits their functions directly (no coroutine
    # of its own). Each maps to (function, successors, link): the successors when the node is also
    # unconditional (a lean run completes it in its loop), else None; the link is the only
    # successor, which a lean run may run next in the same loop.
    direct: Mapping[str, DirectNode] = field(default_factory=dict)
    _regions: dict[str, tuple[list[str], frozenset[str]]] = field(default_factory=dict)
    _arming: dict[str, dict[str, int]] = field(default_factory=dict)

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

    def arming(self, start: str) -> dict[str, int]:
        """For a run started at `start`: each node's count of predecessors in `start`'s region (cached; copy it)."""
        found = self._arming.get(start)
        if found is None:
            found = self._arming[start] = dict.fromkeys(self.nodes, 0)
            for src in self.region(start)[1]:
                for dst, _ in self.forward[src]:
                    found[dst] += 1
        return found

    def jump_edges(self) -> list[tuple[str, str]]:
        """The declared jumps (`jumps=` on a node or `@step`), as (source, target) pairs."""
        return [(name, target) for name, spec in self.nodes.items() for target in sorted(spec.jumps)]


def compile_plan(
    name: str,
    entry: str | None,
    nodes: Mapping[str, NodeSpec],
    edges: list[tuple[str, str, Condition | None]],
    *,
    rules: Mapping[str, Callable[[Any, Any], Any]],
    allow_cycles: bool,
    max_steps: int | None,
    history_limit: int,
    strategy: CheckpointStrategy,
    max_lag: int,
) -> Plan:
    """Validate the graph and build its plan.

    Raises:
        WorkflowDefinitionError: no entry point, an unknown node in an edge or a declared jump, a
            cycle without `allow_cycles`, or two parallel nodes declaring the same key without a
            merge rule.
    """
    if not nodes:
        raise WorkflowDefinitionError("the workflow has no nodes; add some with add_node(name, fn)")
    if entry is None:
        raise WorkflowDefinitionError("the workflow has no entry point; call set_entry_point(name)")
    if entry not in nodes:
        raise WorkflowDefinitionError(f"entry point {entry!r} is not a node; {unknown_node_hint(entry, nodes)}")
    successors: dict[str, list[tuple[str, Condition | None]]] = {node: [] for node in nodes}
    for src, dst, condition in edges:
        for end in (src, dst):
            if end not in nodes:
                raise WorkflowDefinitionError(
                    f"edge {src!r} -> {dst!r} names unknown node {end!r} ({unknown_node_hint(end, nodes)}); "
                    "add it with add_node first"
                )
        successors[src].append((dst, condition))
    for spec in nodes.values():
        for target in sorted(spec.jumps):
            if target not in nodes:
                raise WorkflowDefinitionError(
                    f"node {spec.name!r} declares a jump to unknown node {target!r}; {unknown_node_hint(target, nodes)}"
                )

    forward: dict[str, list[tuple[str, Condition | None]]] = {node: [] for node in nodes}
    back: dict[str, list[tuple[str, Condition | None]]] = {node: [] for node in nodes}
    visited: set[str] = set()
    # The entry first, then every node it does not reach (jump targets), each as a DFS root.
    for root in (entry, *nodes):
        if root not in visited:
            _classify_edges(root, successors, forward, back, visited, allow_cycles)

    indegree = dict.fromkeys(nodes, 0)
    predecessors: dict[str, list[str]] = {node: [] for node in nodes}
    for src, out in forward.items():
        for dst, _ in out:
            indegree[dst] += 1
            predecessors[dst].append(src)
    index = {node: position for position, node in enumerate(nodes)}
    layers: list[list[str]] = []
    remaining = dict(indegree)
    current = [node for node in nodes if remaining[node] == 0]
    while current:
        layers.append(current)
        following: list[str] = []
        for node in current:
            for dst, _ in forward[node]:
                remaining[dst] -= 1
                if remaining[dst] == 0:
                    following.append(dst)
        current = sorted(following, key=index.__getitem__)
    unconditional = frozenset(
        node for node in nodes if not back[node] and all(condition is None for _, condition in forward[node])
    )
    direct: dict[str, DirectNode] = {}
    for node, spec in nodes.items():
        if spec.kind == ASYNC and spec.timeout is None:
            after = tuple(dst for dst, _ in forward[node]) if node in unconditional else None
            direct[node] = (spec.target, after, after[0] if after is not None and len(after) == 1 else None)
    conditions = [condition for out in successors.values() for _, condition in out if condition is not None]
    plan = Plan(
        name=name,
        entry=entry,
        nodes=dict(nodes),
        index=index,
        forward=forward,
        back=back,
        predecessors=predecessors,
        indegree=indegree,
        layers=layers,
        rank={node: position for position, node in enumerate(node for layer in layers for node in layer)},
        async_conditions=any(inspect.iscoroutinefunction(condition) for condition in conditions),
        rules=dict(rules),
        allow_cycles=allow_cycles,
        max_steps=max_steps,
        history_limit=history_limit,
        strategy=strategy,
        max_lag=max_lag,
        shape=_shape(entry, nodes, forward, back),
        unconditional=unconditional,
        direct=direct,
    )
    _check_declared_writes(plan, frozenset(rules))
    return plan


def _shape(
    entry: str,
    nodes: Mapping[str, NodeSpec],
    forward: Mapping[str, list[tuple[str, Condition | None]]],
    back: Mapping[str, list[tuple[str, Condition | None]]],
) -> str:
    """A digest of the entry point, the node names and the edges (each with whether it has a condition)."""
    edges = sorted(
        (kind, src, dst, condition is not None)
        for kind, table in (("forward", forward), ("back", back))
        for src, out in table.items()
        for dst, condition in out
    )
    text = json.dumps([entry, sorted(nodes), edges], separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _classify_edges(
    root: str,
    successors: Mapping[str, list[tuple[str, Condition | None]]],
    forward: dict[str, list[tuple[str, Condition | None]]],
    back: dict[str, list[tuple[str, Condition | None]]],
    visited: set[str],
    allow_cycles: bool,
) -> None:
    # Iterative DFS: an edge into a node still on the stack closes a cycle (a back edge).
    stack: list[tuple[str, int]] = [(root, 0)]
    path: list[str] = [root]
    on_stack = {root}
    visited.add(root)
    while stack:
        node, position = stack[-1]
        out = successors[node]
        if position == len(out):
            stack.pop()
            path.pop()
            on_stack.discard(node)
            continue
        stack[-1] = (node, position + 1)
        dst, condition = out[position]
        if dst in on_stack:
            if not allow_cycles:
                cycle = [*path[path.index(dst) :], dst]
                raise WorkflowDefinitionError(
                    f"the graph has a cycle {' -> '.join(cycle)}; pass allow_cycles=True (and a max_steps bound)"
                )
            back[node].append((dst, condition))
            continue
        forward[node].append((dst, condition))
        if dst not in visited:
            visited.add(dst)
            on_stack.add(dst)
            path.append(dst)
            stack.append((dst, 0))


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
