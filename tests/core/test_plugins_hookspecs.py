"""Every hookspec is documented in its docstring and in docs/hooks.md, and exercised here.

A hook added to `gecko.plugins.hookspecs` without a `test_hook_<name>_...` test in this module,
a docstring, or a `## <name>` section in docs/hooks.md fails the meta-tests below.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest

from gecko.errors import ApprovalRequired, GuardrailViolation
from gecko.plugins import hookimpl, hookspecs
from gecko.plugins.manager import PluginManager
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.types import Event, Message, TokenUsage, ToolCall

HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("gecko_"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def test_hookspecs_are_found() -> None:
    assert "gecko_event" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_docstring_saying_when_it_fires_and_how_results_combine(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc.splitlines()) >= 3, f"{hook} needs a docstring: when it fires, sync/async, how results combine"
    assert "Return values" in doc or "returns" in doc.lower()


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_documented_in_hooks_md(hook: str) -> None:
    headings = re.findall(r"^## `?(\w+)`?", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert hook in headings, f"docs/hooks.md has no '## {hook}' section"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_exercised_by_a_test(hook: str) -> None:
    tests = [name for name in vars(sys.modules[__name__]) if name.startswith(f"test_hook_{hook}_")]
    assert tests, f"add a test named test_hook_{hook}_<behaviour> to this module"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_prefixed_and_not_firstresult(hook: str) -> None:
    options = getattr(hookspecs, hook).gecko_spec
    assert not options.get("firstresult")


# --- one behaviour per hook, through the typed manager ----------------------------


def _request() -> ModelRequest:
    return ModelRequest(messages=[Message.user("secret 1234")])


async def test_hook_gecko_event_reaches_async_and_sync_observers() -> None:
    manager = PluginManager()
    seen: list[str] = []

    class AsyncObserver:
        @hookimpl
        async def gecko_event(self, event: Event) -> None:
            seen.append(f"async:{event.type}")

    class SyncObserver:
        @hookimpl
        def gecko_event(self, event: Event) -> None:
            seen.append(f"sync:{event.type}")

    manager.register(AsyncObserver())
    manager.register(SyncObserver())
    await manager.event(Event(type="agent.started", source="a", run_id="r1"))
    assert sorted(seen) == ["async:agent.started", "sync:agent.started"]


async def test_hook_gecko_model_request_can_redact_in_place() -> None:
    manager = PluginManager()

    class Redactor:
        @hookimpl
        async def gecko_model_request(self, request: ModelRequest, source: str) -> None:
            request.messages[:] = [Message.user(m.text.replace("1234", "####")) for m in request.messages]

    manager.register(Redactor())
    request = _request()
    await manager.model_request(request, source="agent")
    assert request.messages[0].text == "secret ####"


async def test_hook_gecko_model_request_violation_reaches_the_caller() -> None:
    manager = PluginManager()

    class Blocker:
        @hookimpl
        def gecko_model_request(self, request: ModelRequest, source: str) -> None:
            raise GuardrailViolation(f"blocked for {source}")

    manager.register(Blocker())
    with pytest.raises(GuardrailViolation, match="blocked for agent"):
        await manager.model_request(_request(), source="agent")


async def test_hook_gecko_model_response_sees_request_and_response() -> None:
    manager = PluginManager()
    seen: list[tuple[str, str]] = []

    class Auditor:
        @hookimpl
        async def gecko_model_response(self, request: ModelRequest, response: ModelResponse, source: str) -> None:
            seen.append((request.messages[0].text, response.message.text))

    manager.register(Auditor())
    response = ModelResponse(message=Message.assistant("hello"), usage=TokenUsage())
    await manager.model_response(_request(), response, source="agent")
    assert seen == [("secret 1234", "hello")]


async def test_hook_gecko_tool_call_violation_blocks_the_call() -> None:
    manager = PluginManager()

    class Blocker:
        @hookimpl
        async def gecko_tool_call(self, call: ToolCall, source: str) -> None:
            if call.name == "rm":
                raise GuardrailViolation("rm is not allowed")

    manager.register(Blocker())
    await manager.tool_call(ToolCall(id="1", name="ls", arguments="{}"), source="agent")
    with pytest.raises(GuardrailViolation):
        await manager.tool_call(ToolCall(id="2", name="rm", arguments="{}"), source="agent")


async def test_hook_gecko_tool_result_receives_the_result_text() -> None:
    manager = PluginManager()
    seen: list[tuple[str, str, str]] = []

    class Auditor:
        @hookimpl
        def gecko_tool_result(self, call: ToolCall, result: str, source: str) -> None:
            seen.append((call.name, result, source))

    manager.register(Auditor())
    await manager.tool_result(ToolCall(id="1", name="ls", arguments="{}"), "a.txt", source="agent")
    assert seen == [("ls", "a.txt", "agent")]


async def test_hook_gecko_tool_admit_sees_the_conversation_and_may_hold_the_call() -> None:
    manager = PluginManager()
    seen: list[tuple[str, int, str]] = []

    class Gate:
        @hookimpl
        async def gecko_tool_admit(self, call: ToolCall, messages: list[Message], source: str) -> None:
            seen.append((call.name, len(messages), source))
            if call.name == "send_email":
                raise ApprovalRequired("send_email after reading a web page")

    manager.register(Gate())
    conversation = [Message.user("hi")]
    await manager.tool_admit(ToolCall(id="1", name="ls", arguments="{}"), conversation, source="agent")
    with pytest.raises(ApprovalRequired, match="after reading a web page"):
        await manager.tool_admit(ToolCall(id="2", name="send_email", arguments="{}"), conversation, source="agent")
    assert seen == [("ls", 1, "agent"), ("send_email", 1, "agent")]
