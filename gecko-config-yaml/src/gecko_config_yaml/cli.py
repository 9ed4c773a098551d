"""`gecko run FILE.yaml` and `gecko workflow show FILE.yaml`, called lazily by the core's `gecko` command."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
from pydantic import BaseModel

from gecko.compose.team import MemberResult, Team
from gecko.compose.workflow import Workflow, WorkflowResult
from gecko.core.agent import Agent
from gecko.errors import GeckoError
from gecko.plugins import hookimpl
from gecko.plugins.hookspecs import Operation
from gecko.plugins.manager import plugin_manager
from gecko.types import AgentOutput
from gecko_config_yaml._build import DefinitionSource, build, load_definition
from gecko_config_yaml.errors import DefinitionError

__all__ = ("RunRequest", "run_command", "show_command")

# Operations reported as progress; model calls are left out as noise.
_REPORTED = frozenset({"workflow.node", "team.member", "agent.run", "tool.call"})


@dataclass(frozen=True)
class RunRequest:
    """What `gecko run` was asked to do."""

    file: Path
    input: Any
    session_id: str | None
    resume: bool


class _Progress:
    """A hook plugin printing operations as they start and end: text on a terminal, JSON lines otherwise."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.started: dict[str, float] = {}

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, default=str) + "\n")
        self.out.flush()

    def depth(self, operation: Operation) -> int:
        parent, depth = operation.parent, 0
        while parent is not None:
            depth += parent.kind in _REPORTED
            parent = parent.parent
        return depth

    @hookimpl
    def gecko_operation_started(self, operation: Operation) -> None:
        if operation.kind not in _REPORTED:
            return
        self.started[operation.id] = time.perf_counter()
        if self.as_json:
            self.emit({"event": "started", "kind": operation.kind, "name": operation.name, "id": operation.id})
        else:
            self.out.write(f"{'  ' * self.depth(operation)}> {operation.kind} {operation.name}\n")
            self.out.flush()

    @hookimpl
    def gecko_operation_ended(self, operation: Operation) -> None:
        if operation.kind not in _REPORTED:
            return
        seconds = time.perf_counter() - self.started.pop(operation.id, time.perf_counter())
        error = None if operation.error is None else f"{type(operation.error).__name__}: {operation.error}"
        if self.as_json:
            record = {"event": "ended", "kind": operation.kind, "name": operation.name, "id": operation.id}
            self.emit({**record, "status": operation.status, "error": error, "seconds": round(seconds, 4)})
            return
        mark = {"ok": "done", "error": "FAILED", "cancelled": "cancelled"}.get(operation.status, operation.status)
        detail = f" ({error})" if error else ""
        self.out.write(f"{'  ' * self.depth(operation)}< {operation.kind} {operation.name}: {mark}{detail}\n")
        self.out.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, AgentOutput):  # its messages would repeat the whole conversation
        return {"content": value.content, "data": _jsonable(value.data)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, MemberResult):
        error = None if value.error is None else f"{type(value.error).__name__}: {value.error}"
        return {
            "member_index": value.member_index,
            "ok": value.is_success,
            "result": _jsonable(value.result),
            "error": error,
        }
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


async def _run(request: RunRequest, source: DefinitionSource) -> dict[str, Any]:
    async with build(source) as runnable:
        if isinstance(runnable, Workflow):
            result: WorkflowResult = (
                await runnable.resume(request.session_id, request.input)
                if request.resume and request.session_id is not None
                else await runnable.execute(request.input, session_id=request.session_id)
            )
            record: dict[str, Any] = {
                "event": "result",
                "status": result.status,
                "session_id": result.session_id,
                "output": _jsonable(result.output),
            }
            if result.paused:
                record.update(node=result.interrupted_node, interrupt=_jsonable(result.interrupt))
            return record
        if request.resume:
            raise DefinitionError(str(request.file), None, "kind", "--resume continues workflows only")
        if isinstance(runnable, Agent):
            output = await runnable.run(request.input, session_id=request.session_id)
            return {"event": "result", "status": "completed", "output": output.content, "data": _jsonable(output.data)}
        assert isinstance(runnable, Team)
        return {"event": "result", "status": "completed", "output": _jsonable(await runnable.run(request.input))}


def run_command(request: RunRequest) -> int:
    """Run the definition in `request.file`, reporting progress on stdout; returns the exit status.

    0: completed or paused for input (the result says which); 1: the run failed; 2: the
    definition was refused.
    """
    out, err = sys.stdout, sys.stderr
    if request.resume and request.session_id is None:
        err.write("gecko run: --resume needs --session ID\n")
        return 2
    _import_roots(request.file)
    if out.isatty():
        return _run_reporting(request, _Progress(out, as_json=False))
    with _stdout_for_records_only(out) as records:
        return _run_reporting(request, _Progress(records, as_json=True))


def _run_reporting(request: RunRequest, progress: _Progress) -> int:
    err = sys.stderr
    manager = plugin_manager()
    manager.register(progress, name="gecko-run-progress")
    try:
        record = anyio.run(_run, request, load_definition(request.file))
    except DefinitionError as exc:
        err.write(f"gecko run: {exc}\n")
        return 2
    except GeckoError as exc:
        cause = f" (caused by {type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
        err.write(f"gecko run: {type(exc).__name__}: {exc}{cause}\n")
        return 1
    finally:
        manager.unregister(progress)
    if progress.as_json:
        progress.emit(record)
    else:
        _print_result(record, request, progress.out)
    return 0


@contextlib.contextmanager
def _stdout_for_records_only(out: TextIO) -> Iterator[TextIO]:
    """A stream on `out` for JSON records; meanwhile all else written to stdout goes to stderr.

    `print` goes to `sys.stderr`; when `out` is a real file, file descriptor 1 points at stderr
    too, so writes from C code and child processes cannot break the stream either.
    """
    out.flush()
    sys.stderr.flush()
    try:
        fd = out.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):  # not a file (a captured stream): prints only
        with contextlib.redirect_stdout(sys.stderr):
            yield out
        return
    records = os.fdopen(os.dup(fd), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield records
    finally:
        # What reached the original stdout object is flushed while descriptor 1 still means stderr.
        for stream in (sys.__stdout__, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError):  # absent, or closed by user code
                stream.flush()  # type: ignore[union-attr]
        records.flush()
        os.dup2(records.fileno(), fd)
        records.close()


def _print_result(record: dict[str, Any], request: RunRequest, out: TextIO) -> None:
    if record["status"] == "paused":
        out.write(f"paused at node {record['node']}: {json.dumps(record['interrupt'], default=str)}\n")
        out.write(f"continue with: gecko run {request.file} --session {record['session_id']} --resume --input VALUE\n")
        return
    output = record["output"]
    out.write(output if isinstance(output, str) else json.dumps(output, indent=2, default=str))
    out.write("\n")


def show_command(file: Path) -> int:
    """Print the workflow defined in `file` as Mermaid, then its layers; returns the exit status."""
    _import_roots(file)

    async def draw(source: DefinitionSource) -> str:
        async with build(source, open_storage=False) as runnable:
            if not isinstance(runnable, Workflow):
                raise DefinitionError(str(file), None, "kind", f"expected a workflow, got {type(runnable).__name__}")
            layers = "\n".join(f"%% layer {depth}: {', '.join(layer)}" for depth, layer in enumerate(runnable.layers))
            return f"{runnable.to_mermaid()}\n\n{layers}\n"

    try:
        sys.stdout.write(anyio.run(draw, load_definition(file)))
    except DefinitionError as exc:
        sys.stderr.write(f"gecko workflow show: {exc}\n")
        return 2
    return 0


def _import_roots(file: Path) -> None:
    """Import paths in a definition resolve from its folder, then the working directory."""
    for root in (str(Path.cwd()), str(file.resolve().parent)):
        if root not in sys.path:
            sys.path.insert(0, root)
