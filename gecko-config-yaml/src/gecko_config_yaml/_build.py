"""From a file to a validated definition, and from a definition to a runnable agent, workflow or team."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import anyio.to_thread
from pydantic import ValidationError

from gecko.compose.team import ExecutionStrategy, Team
from gecko.compose.workflow import CheckpointStrategy, Workflow
from gecko.core.agent import Agent
from gecko.core.memory import SummaryTokenMemory, TokenMemory
from gecko.core.prompt import PromptRegistry
from gecko.core.toolbox import Tool
from gecko.errors import GeckoError, WorkflowDefinitionError
from gecko.plugins.models import ChatModel, create_model
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage
from gecko_config_yaml._loader import Lines, Path, SafeLineLoader, field_name, line_of
from gecko_config_yaml.errors import DefinitionError
from gecko_config_yaml.models import (
    WORKFLOW_SETTINGS,
    AgentDefinition,
    Definition,
    DefinitionFile,
    ModelDefinition,
    NodeDefinition,
    PromptReference,
    TeamDefinition,
    TokenMemoryDefinition,
    WorkflowDefinition,
)

__all__ = ("DefinitionSource", "Runnable", "build", "load_definition", "parse_definition")

Runnable = Agent | Workflow | Team


@dataclass(frozen=True)
class DefinitionSource:
    """A validated definition and where each of its entries came from.

    Attributes:
        definition: The agent, workflow or team definition.
        file: The file name used in errors (`<string>` for text, `<python>` for a built definition).
        lines: The 1-based line of each entry, by path (`("nodes", "fetch", "call")`); empty when
            the definition was not read from text.
    """

    definition: Definition
    file: str = "<python>"
    lines: Lines = field(default_factory=dict)

    def error(self, path: Path, reason: str) -> DefinitionError:
        """A `DefinitionError` located at `path`."""
        return DefinitionError(self.file, line_of(self.lines, path), field_name(path), reason)


MAX_DEFINITION_SIZE = 4 * 1024 * 1024
"""The longest definition read, in characters (and bytes of a file): it names code and settings,
not data, and reading YAML is slow enough that a runaway file would stall `gecko run`."""


def parse_definition(text: str, file: str = "<string>") -> DefinitionSource:
    """Validate a definition given as YAML text.

    Raises:
        DefinitionError: unsafe or invalid YAML, a text longer than `MAX_DEFINITION_SIZE`, or a
            definition that breaks the schema; the message names `file`, the line and the field.
    """
    if len(text) > MAX_DEFINITION_SIZE:
        raise _too_long(file)
    data, lines = SafeLineLoader(text, file).load_with_lines()
    try:
        definition = DefinitionFile.model_validate(data).root
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        path = _data_path(data, first["loc"])
        # A missing field or a bad tag is reported at the mapping that lacks it, under the field's name.
        if first["type"] == "missing":
            path = (*path, first["loc"][-1])
        elif first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = (*path, str(first.get("ctx", {}).get("discriminator", "kind")).strip("'"))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        if first["type"] == "string_type" and isinstance(first.get("input"), (bool, int, float)):
            more += f"; YAML read it as {first['input']!r} (yes, no, on, off and numbers need quotes)"
        raise DefinitionError(file, line_of(lines, path), field_name(path), first["msg"] + more) from None
    return DefinitionSource(definition, file, lines)


def load_definition(path: str | FilePath) -> DefinitionSource:
    """Read and validate a definition file (`parse_definition` on its text).

    Raises:
        DefinitionError: the file cannot be read, or `parse_definition` refuses it.
    """
    try:
        with FilePath(path).open("rb") as file:
            data = file.read(MAX_DEFINITION_SIZE + 1)
    except OSError as exc:
        raise DefinitionError(str(path), None, "", f"cannot read the file: {exc}") from None
    if len(data) > MAX_DEFINITION_SIZE:
        raise _too_long(str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DefinitionError(str(path), line, "", f"not UTF-8: byte {data[exc.start]:#04x}") from None
    return parse_definition(text, str(path))


def _too_long(file: str) -> DefinitionError:
    limit = MAX_DEFINITION_SIZE // (1024 * 1024)
    return DefinitionError(file, None, "", f"longer than {limit} MiB: a definition names code and settings, not data")


def _data_path(data: Any, loc: tuple[int | str, ...]) -> Path:
    """The part of a pydantic error location that exists in the data (union branch names dropped)."""
    path: list[str | int] = []
    for part in loc:
        in_mapping = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_list):
            continue  # a union branch's name, or a field the data lacks
        data = data[part]
        path.append(part)
    return tuple(path)


@asynccontextmanager
async def build(source: DefinitionSource | Definition, *, open_storage: bool = True) -> AsyncIterator[Runnable]:
    """Build the agent, workflow or team a definition describes; storages it opened close on exit.

    With `open_storage=False` workflows get no storage (to inspect a graph without touching it) and
    agents get their storage URL, opened at their first run; otherwise a storage is opened here.

    Import paths are resolved with the current `sys.path` (the `gecko` command puts the definition's
    folder and the working directory first); modules not imported yet are imported on a worker
    thread, as are model providers' plugins, so building never blocks the event loop.

    Raises:
        DefinitionError: an import path does not resolve to what its field needs, a model spec
            names no installed provider, or the workflow graph is invalid; located like
            `parse_definition`'s errors.
    """
    if not isinstance(source, DefinitionSource):
        source = DefinitionSource(source)
    async with AsyncExitStack() as stack:
        yield await _Builder(source, stack, open_storage).any((), source.definition)


class _Builder:
    def __init__(self, source: DefinitionSource, stack: AsyncExitStack, open_storage: bool) -> None:
        self.source = source
        self.stack = stack
        self.open_storage = open_storage

    async def any(self, path: Path, definition: Definition) -> Runnable:
        if isinstance(definition, AgentDefinition):
            return await self.agent(path, definition)
        if isinstance(definition, TeamDefinition):
            return await self.team(path, definition)
        return await self.workflow(path, definition)

    async def resolve(self, path: Path, import_path: str) -> Any:
        module_name, _, attribute = import_path.partition(":")
        found: Any = sys.modules.get(module_name)
        if found is None:
            try:  # importing reads files and runs module code: off the event loop
                found = await anyio.to_thread.run_sync(importlib.import_module, module_name)
            except (Exception, SystemExit) as exc:  # any failure while importing user code is the definition's problem
                raise self.source.error(path, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
        for part in attribute.split("."):
            try:
                found = getattr(found, part)
            except AttributeError:
                raise self.source.error(
                    path, f"{import_path!r}: {module_name!r} has no attribute path {attribute!r}"
                ) from None
            except Exception as exc:  # a property or module `__getattr__` of user code failing
                raise self.source.error(
                    path, f"{import_path!r}: reading {part!r} raised {type(exc).__name__}: {exc}"
                ) from exc
        return found

    async def callable(self, path: Path, import_path: str) -> Any:
        found = await self.resolve(path, import_path)
        if not callable(found):
            raise self.source.error(path, f"{import_path!r} is {type(found).__name__}, not callable")
        return found

    async def storage(self, path: Path, url: str) -> Storage:
        """The key-value storage at `url` (the `storage` field of `path`), closed when the build exits."""
        try:
            return await self.stack.enter_async_context(await create_storage(url, kind="kv"))
        except GeckoError as exc:
            raise self.source.error((*path, "storage"), str(exc)) from exc

    async def model(self, path: Path, model: str | ModelDefinition) -> ChatModel:
        spec, settings = (model, {}) if isinstance(model, str) else (model.spec, model.settings)
        try:  # the provider's plugin may be imported on first use
            return await anyio.to_thread.run_sync(functools.partial(create_model, spec, **settings))
        except GeckoError as exc:
            raise self.source.error(path, str(exc)) from exc
        except Exception as exc:  # settings the provider's class does not take, or cannot use
            raise self.source.error(path, f"settings for {spec!r} rejected: {type(exc).__name__}: {exc}") from exc

    async def prompt(self, path: Path, prompt: str | PromptReference) -> str:
        if isinstance(prompt, str):
            return prompt
        registry = await self.resolve((*path, "registry"), prompt.registry)
        if not isinstance(registry, PromptRegistry):
            raise self.source.error((*path, "registry"), f"{prompt.registry!r} is not a PromptRegistry")
        try:
            return registry.get(prompt.name, prompt.version).render(**prompt.values)
        except GeckoError as exc:
            raise self.source.error(path, str(exc)) from exc

    async def agent(self, path: Path, definition: AgentDefinition) -> Agent:
        tools = []
        for index, import_path in enumerate(definition.tools):
            found = await self.resolve((*path, "tools", index), import_path)
            if not isinstance(found, Tool) and not callable(found):
                raise self.source.error((*path, "tools", index), f"{import_path!r} is not a tool or function")
            tools.append(found)
        memory: TokenMemory | None = None
        if isinstance(definition.memory, TokenMemoryDefinition):
            memory = TokenMemory(definition.memory.max_tokens, definition.memory.tokenizer_model)
        elif definition.memory is not None:
            memory = SummaryTokenMemory(
                await self.model((*path, "memory", "model"), definition.memory.model),
                definition.memory.max_tokens,
                keep_ratio=definition.memory.keep_ratio,
            )
        output_type = None
        if definition.output_type is not None:
            output_type = await self.resolve((*path, "output_type"), definition.output_type)
            if not isinstance(output_type, type):
                raise self.source.error((*path, "output_type"), f"{definition.output_type!r} is not a type")
        model = await self.model((*path, "model"), definition.model)
        storage: Storage | str | None = definition.storage
        if definition.storage is not None and self.open_storage:
            storage = await self.storage(path, definition.storage)
        prompt = definition.system_prompt
        system_prompt = None if prompt is None else await self.prompt((*path, "system_prompt"), prompt)
        try:
            return Agent(
                model,
                tools=tools,
                system_prompt=system_prompt,
                memory=memory,
                output_type=output_type,
                max_turns=definition.max_turns,
                storage=storage,
                session_id=definition.session_id,
                name=definition.name,
            )
        except GeckoError as exc:
            raise self.source.error(path, str(exc)) from exc

    async def team(self, path: Path, definition: TeamDefinition) -> Team:
        members: list[object] = []
        for index, member in enumerate(definition.members):
            where = (*path, "members", index)
            members.append(
                await self.resolve(where, member) if isinstance(member, str) else await self.any(where, member)
            )
        mapper = None
        if definition.input_mapper is not None:
            mapper = await self.callable((*path, "input_mapper"), definition.input_mapper)
        try:
            return Team(
                members,
                name=definition.name,
                strategy=ExecutionStrategy(definition.strategy),
                max_concurrent=definition.max_concurrent,
                input_mapper=mapper,
            )
        except GeckoError as exc:
            raise self.source.error(path, str(exc)) from exc

    async def node(self, path: Path, node: NodeDefinition) -> object:
        if node.call is not None:
            return await self.resolve((*path, "call"), node.call)
        if node.agent is not None:
            return await self.agent((*path, "agent"), node.agent)
        if node.team is not None:
            return await self.team((*path, "team"), node.team)
        assert node.workflow is not None  # the model admits exactly one target
        return await self.workflow((*path, "workflow"), node.workflow)

    async def workflow(self, path: Path, definition: WorkflowDefinition) -> Workflow:
        self.check_names(path, definition)
        storage = None
        if definition.storage is not None and self.open_storage:
            storage = await self.storage(path, definition.storage)
        try:
            workflow = Workflow(
                definition.name,
                storage=storage,
                checkpoint_strategy=CheckpointStrategy(definition.checkpoint),
                **{setting: getattr(definition, setting) for setting in WORKFLOW_SETTINGS},
            )
        except GeckoError as exc:  # a name that cannot be a part of checkpoint keys
            raise self.source.error(path, str(exc)) from exc
        for key, rule in definition.merge_rules.items():
            where = (*path, "merge_rules", key)
            function = rule if rule in ("append", "add", "merge") else await self.callable(where, rule)
            try:
                workflow.set_merge_rule(key, function)
            except WorkflowDefinitionError as exc:  # an async function
                raise self.source.error(where, str(exc)) from exc
        for name, node in definition.nodes.items():
            where = (*path, "nodes", name)
            try:
                workflow.add_node(
                    name,
                    await self.node(where, node),
                    timeout=node.timeout,
                    writes=tuple(node.writes),
                    jumps=tuple(node.jumps),
                )
            except WorkflowDefinitionError as exc:
                raise self.source.error(where, str(exc)) from exc
        for index, edge in enumerate(definition.edges):
            condition = None if edge.when is None else await self.callable((*path, "edges", index, "when"), edge.when)
            workflow.add_edge(edge.source, edge.target, condition)
        workflow.set_entry_point(definition.entry)
        try:
            workflow.compile()
        except WorkflowDefinitionError as exc:
            raise self.source.error(path, str(exc)) from exc
        return workflow

    def check_names(self, path: Path, definition: WorkflowDefinition) -> None:
        """Unknown node names, reported at their own line (the engine's check cannot know lines)."""
        known = definition.nodes
        named: list[tuple[Path, str]] = [((*path, "entry"), definition.entry)]
        for index, edge in enumerate(definition.edges):
            named += [((*path, "edges", index, "from"), edge.source), ((*path, "edges", index, "to"), edge.target)]
        for name, node in definition.nodes.items():
            named += [((*path, "nodes", name, "jumps", index), target) for index, target in enumerate(node.jumps)]
        for where, name in named:
            if name not in known:
                raise self.source.error(where, f"no node named {name!r}; nodes: {', '.join(known)}")
