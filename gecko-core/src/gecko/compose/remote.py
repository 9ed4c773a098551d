"""Jobs that an executor runs elsewhere: code located by import path, data as JSON only.

A job is one team member run or one workflow function-node run, written as JSON:

- `{"v": 1, "kind": "member", "target": "pkg.module:name", "input": ...}`;
- `{"v": 1, "kind": "node", "target": ..., "node": ..., "input": ..., "last": ..., "state": {...},
  "session_id": ...}` (and `"resume"` when the node is resumed after an interrupt).

Values travel as `gecko.compose._values.storable` keeps them in checkpoints (JSON data and Gecko's
own result types, tagged), so nothing is pickled and a worker rebuilds exactly what was sent. The
worker imports the target by its path, which is the deployment contract: workers run the same code.
A node's reply carries its output and its state writes, which the calling engine applies to the
node's own state view, so merging, checkpoints and `Next` jumps work as for a local node. A remote
node sees the workflow input, its last output and the state; the run's history stays local.

Trust: whoever submits jobs to a worker can run code there (a Dask client ships functions anyway),
so workers trust their scheduler. A job still reaches only job targets, so a stray or tampered job
document cannot call arbitrary code: its target must be a Python function or `@step` defined in the
module its path names, or (for a member) an instance of a type from outside the standard library
(an agent, a team, a callable object), and never from the standard library. Jobs and replies
holding NaN or infinities are refused, as checkpoints refuse them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread

from gecko.compose._state import DELETED, History, StateView
from gecko.compose._values import restored, storable, storable_error
from gecko.compose.nodes import _KEEP, Interrupt, Next, NodeContext, Step, _current_context
from gecko.errors import ConfigurationError, ExecutorError, UnstorableValueError
from gecko.plugins._text import text_of, valid_text
from gecko.plugins.executors import Executor
from gecko.plugins.storage import load_data
from gecko.redaction import redact

__all__ = ("RemoteMember", "RemoteNode", "import_path", "resolve", "run_job")

_VERSION = 1


def import_path(obj: Any, what: str) -> str:
    """`module:qualified.name` of a module-level function, class or `@step`, checked to resolve back to it.

    Raises:
        ConfigurationError: `obj` is not reachable by import (a lambda, a nested function, an instance).
    """
    function = obj.fn if isinstance(obj, Step) else obj
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
    if isinstance(module, str) and isinstance(name, str) and "<" not in name:
        path = f"{module}:{name}"
        try:
            found = resolve(path)
        except ConfigurationError:
            found = None
        if found is function or (isinstance(found, Step) and found.fn is function):
            return path
    raise ConfigurationError(
        f"{what} ({obj!r}) cannot be located by import path, so a worker cannot load it: define it at module "
        "level, or pass its path as 'package.module:name'"
    )


def resolve(path: str) -> Any:
    """The object at import path `module:qualified.name`.

    Raises:
        ConfigurationError: the path is malformed, or nothing is found there.
    """
    module_name, _, name = path.partition(":")
    if not module_name or not name:
        raise ConfigurationError(f"import path {path!r} must be 'package.module:name'")
    try:
        found: Any = importlib.import_module(module_name)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"nothing found at import path {path!r}: {exc}") from None
    return found


def _job_target(document: dict[str, Any]) -> Any:
    """The object a job may run at its `target` path.

    Raises:
        ConfigurationError: The path is malformed or names nothing.
        ExecutorError: The object is not a job target (see the module's trust note).
    """
    path = document.get("target")
    if not isinstance(path, str):
        raise ExecutorError(f"a job's target must be an import path string, got {type(path).__name__}")
    module_name = path.partition(":")[0]
    if not _from_stdlib(module_name):  # checked before importing anything
        found = resolve(path)
        function = found.fn if isinstance(found, Step) else found
        if inspect.isfunction(function) and function.__module__ == module_name:
            return found
        instance_of_user_type = not isinstance(found, (type, ModuleType)) and not _from_stdlib(type(found).__module__)
        if document.get("kind") == "member" and instance_of_user_type:
            return found  # an agent, team or workflow, or a callable object: `_entry_point` checks it
    raise ExecutorError(
        f"job target {path!r} is not a function or step defined in {module_name!r}"
        f"{' nor an object of a type defined outside the standard library' if document.get('kind') == 'member' else ''}"
        "; a job runs only team members and workflow nodes"
    )


def _from_stdlib(module_name: str) -> bool:
    return module_name.partition(".")[0] in sys.stdlib_module_names


def _decode(text: str, what: str) -> dict[str, Any]:
    """`text` as a JSON object of data (`load_data`: no NaN, infinity or lone surrogate).

    Raises:
        ExecutorError: It is not one.
    """
    try:
        document = load_data(text)
    except ValueError as exc:
        raise ExecutorError(f"{what} is not JSON: {redact(str(exc))[:200]}") from None
    if not isinstance(document, dict):
        raise ExecutorError(f"{what} must be a JSON object, got {type(document).__name__}")
    return document


def run_job(job: str) -> str:
    """Run a job on this worker, in an event loop of its own, and return the JSON reply."""
    return anyio.run(arun_job, job)


async def arun_job(job: str) -> str:
    """Run a job in the running event loop and return the JSON reply (`run_job` without its own loop)."""
    try:
        document = _decode(job, "the job")
        if document.get("v") != _VERSION:
            raise ExecutorError(f"a job must be a JSON object with v={_VERSION}")
        kind = document.get("kind")
        if kind == "member":
            reply = await _run_member(document)
        elif kind == "node":
            reply = await _run_node(document)
        else:
            raise ExecutorError(f"unknown job kind {kind!r}")
    except Exception as exc:
        reply = {"ok": False, "error": _error(exc)}
    try:
        return _json_text(reply, "the job's reply (its result, output, state writes or error)")
    except UnstorableValueError as exc:
        return json.dumps({"ok": False, "error": _error(exc)})


def _json_text(document: dict[str, Any], what: str) -> str:
    """`document` as JSON text.

    Raises:
        UnstorableValueError: it holds a lone surrogate or an integer past Python's digit limit (the
            other side would refuse the whole text, or JSON cannot write it).
    """
    try:
        text = json.dumps(document, ensure_ascii=False)
        text.encode()
    except ValueError as exc:  # UnicodeEncodeError for a lone surrogate
        problem = "a lone surrogate" if isinstance(exc, UnicodeEncodeError) else f"an unwritable number ({exc})"
        raise UnstorableValueError(f"{what} holds {problem}") from None
    return text


async def _run_member(document: dict[str, Any]) -> dict[str, Any]:
    from gecko.compose.team import _entry_point

    function, is_async = _entry_point(_job_target(document), 0)
    value = restored(document.get("input"), "the job's input")
    if is_async:
        result = await function(value)
    else:
        result = await anyio.to_thread.run_sync(functools.partial(function, value))
        if inspect.isawaitable(result):
            result = await result
    return {"ok": True, "value": storable(result, "the member's result")}


async def _run_node(document: dict[str, Any]) -> dict[str, Any]:
    target = _job_target(document)
    function = target.fn if isinstance(target, Step) else target
    state = restored(document.get("state"), "the job's state")
    if not isinstance(state, dict):
        raise ExecutorError("a node job's state must be a JSON object")
    view = StateView(state)
    ctx = NodeContext(
        str(document.get("node")),
        restored(document.get("input"), "the job's input"),
        view,
        History(1),
        restored(document.get("last"), "the job's last output"),
        str(document.get("session_id")),
        restored(document["resume"], "the job's resume value") if "resume" in document else _KEEP,
    )
    token = _current_context.set(ctx)
    try:
        if inspect.iscoroutinefunction(function):
            output = await function(ctx)
        else:
            output = await anyio.to_thread.run_sync(function, ctx)
    except Interrupt as signal:
        return {"ok": True, "interrupt": storable(signal.payload, "the node's interrupt payload")}
    finally:
        _current_context.reset(token)
    writes = view.diff()
    jump = None
    if isinstance(output, Next):
        jump = {
            "node": output.node,
            "input": storable(output.input, "the Next input"),
            "update_state": storable(dict(output.update_state or {}), "the Next state update", keyed=True),
        }
        output = None
    return {
        "ok": True,
        "output": storable(output, "the node's output"),
        "next": jump,
        "writes": storable(
            {key: value for key, value in writes.items() if value is not DELETED}, "the node's writes", keyed=True
        ),
        "deleted": [key for key, value in writes.items() if value is DELETED],
    }


def _error(exc: Exception) -> dict[str, Any]:
    try:
        return storable_error(exc, "the job's error")
    except UnstorableValueError:
        # A user's own exception type cannot be rebuilt here: keep its name and message.
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return storable_error(ExecutorError(f"{name}: {redact(valid_text(text_of(exc)))[:500]}"), "the job's error")


async def _submit(executor: Executor, document: dict[str, Any]) -> dict[str, Any]:
    reply_text = await executor.submit(_json_text({"v": _VERSION, **document}, "the job (its input or state)"))
    if not isinstance(reply_text, str):
        raise ExecutorError(f"the executor returned a {type(reply_text).__name__}, not a JSON reply")
    reply = _decode(reply_text, "the executor's reply")
    if not isinstance(reply.get("ok"), bool):
        raise ExecutorError("the executor's reply has no boolean 'ok'")
    if not reply["ok"]:
        error = restored(reply.get("error"), "the job's error")
        if isinstance(error, Exception):
            raise error
        raise ExecutorError("the job failed without an error")
    return reply


class RemoteMember:
    """A team member run by an executor: `await member(input)` sends a job and returns its result."""

    __slots__ = ("executor", "path")

    def __init__(self, executor: Executor, member: Any, index: int) -> None:
        self.executor = executor
        self.path = member if isinstance(member, str) else import_path(member, f"team member {index}")
        if isinstance(member, str):  # a typo or a refused target fails when the team is built, not on a worker
            try:
                _job_target({"kind": "member", "target": member})
            except ExecutorError as exc:
                raise ConfigurationError(f"team member {index}: {exc}") from None

    async def __call__(self, value: Any) -> Any:
        document = {"kind": "member", "target": self.path, "input": storable(value, "the member's input")}
        reply = await _submit(self.executor, document)
        return restored(reply.get("value"), "the member's result")


class RemoteNode:
    """A workflow function node run by an executor; replays the node's state writes on its local view."""

    __slots__ = ("executor", "path")

    def __init__(self, executor: Executor, function: Callable[..., Any], node: str) -> None:
        self.executor = executor
        self.path = import_path(function, f"node {node!r}")

    async def __call__(self, ctx: NodeContext) -> Any:
        state = ctx.state
        document = {
            "kind": "node",
            "target": self.path,
            "node": ctx.node,
            "input": storable(ctx.input, "the workflow input"),
            "last": storable(ctx.get_last_output(), f"the input of node {ctx.node!r}"),
            "state": storable(dict(state), "the workflow state", keyed=True),
            "session_id": ctx.session_id,
        }
        if ctx._resume is not _KEEP:  # a resumed node runs again, and its `interrupt()` returns this
            document["resume"] = storable(ctx._resume, f"the resume value of node {ctx.node!r}")
        reply = await _submit(self.executor, document)
        if "interrupt" in reply:
            raise Interrupt(ctx.node, restored(reply["interrupt"], "the node's interrupt payload"))
        writes = restored(reply.get("writes"), "the node's writes")
        deleted = reply.get("deleted")
        jump = reply.get("next")
        if (
            not isinstance(writes, dict)
            or not isinstance(deleted, list)
            or not all(isinstance(key, str) for key in deleted)
            or not (jump is None or (isinstance(jump, dict) and isinstance(jump.get("node"), str)))
        ):
            raise ExecutorError(f"the reply of node {ctx.node!r} lacks its writes, deletions or next node")
        for key, value in writes.items():
            state[key] = value
        for key in deleted:
            if key in state:
                del state[key]
        if jump is not None:
            return Next(
                jump["node"],
                restored(jump.get("input"), "the Next input"),
                restored(jump.get("update_state"), "the Next state update") or None,
            )
        return restored(reply.get("output"), "the node's output")
