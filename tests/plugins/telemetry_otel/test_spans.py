"""Span trees of real agent, workflow and team runs, exported by the installed `otel` plugin."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from gecko.compose.nodes import NodeContext
from gecko.compose.team import ExecutionStrategy, Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.builder import AgentBuilder
from gecko.core.toolbox import tool
from gecko.plugins import plugin_manager
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.testing.models import FunctionModel, ScriptedModel, reply, tool_calls_reply


class Tree:
    """The finished spans of one test, navigable by name."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = list(spans)
        self.by_id = {span.context.span_id: span for span in self.spans}

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.named(name)
        return span

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return None if span.parent is None else self.by_id.get(span.parent.span_id)

    def path(self, span: ReadableSpan) -> list[str]:
        names: list[str] = []
        current: ReadableSpan | None = span
        while current is not None:
            names.append(current.name)
            current = self.parent(current)
        return names

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is not None and s.parent.span_id == span.context.span_id]


def _two_tool_agent(name: str, *, user_spans: bool = False) -> Agent:
    """An agent whose two tools wait for each other: they provably run concurrently.

    With `user_spans`, each tool then starts a span `user <tool>` with the global tracer, as user code would.
    """
    arrived: list[str] = []
    both = anyio.Event()

    async def arrive(tool_name: str) -> str:
        arrived.append(tool_name)
        if len(arrived) == 2:
            both.set()
        await both.wait()
        logging.getLogger("gecko.test.tools").warning("tool %s ran", tool_name)
        if user_spans:
            with trace.get_tracer("user-code").start_as_current_span(f"user {tool_name}"):
                pass
        return f"{tool_name} ok"

    @tool
    async def search(query: str) -> str:
        """Search."""
        return await arrive("search")

    @tool
    async def fetch(url: str) -> str:
        """Fetch."""
        return await arrive("fetch")

    model = ScriptedModel(
        [tool_calls_reply(("search", '{"query": "q"}'), ("fetch", '{"url": "u"}')), reply(f"{name} done")],
        model="m-1",
    )
    return AgentBuilder().with_model(model).with_tools([search, fetch]).with_name(name).build()


async def test_agent_with_two_parallel_tool_calls(spans: InMemorySpanExporter) -> None:
    await _two_tool_agent("researcher").run("go")
    tree = Tree(spans.get_finished_spans())
    root = tree.one("invoke_agent researcher")
    assert tree.parent(root) is None
    assert sorted(span.name for span in tree.children(root)) == [
        "chat m-1", "chat m-1", "execute_tool fetch", "execute_tool search",
    ]  # fmt: skip
    assert {span.context.trace_id for span in tree.spans} == {root.context.trace_id}
    assert len(tree.spans) == 5
    # Model call spans start when the call ends, with the start time it had: still inside the run.
    chats = sorted(tree.named("chat m-1"), key=lambda span: span.start_time or 0)
    tools = tree.named("execute_tool search") + tree.named("execute_tool fetch")
    assert root.start_time is not None
    assert root.end_time is not None
    for chat in chats:
        assert chat.start_time is not None
        assert chat.end_time is not None
        assert root.start_time <= chat.start_time <= chat.end_time <= root.end_time
    assert all(chats[0].end_time <= (tool.start_time or 0) for tool in tools)
    assert all((tool.end_time or 0) <= (chats[1].start_time or 0) for tool in tools)

    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "researcher"
    assert root.attributes["gen_ai.usage.input_tokens"] == 20
    first_chat = min(tree.named("chat m-1"), key=lambda span: span.start_time or 0)
    assert first_chat.attributes is not None
    assert first_chat.attributes["gen_ai.provider.name"] == "scripted"
    assert first_chat.attributes["gen_ai.request.model"] == "m-1"
    assert first_chat.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert first_chat.attributes["gen_ai.usage.output_tokens"] == 5
    search = tree.one("execute_tool search")
    assert search.attributes is not None
    assert search.attributes["gen_ai.tool.name"] == "search"
    assert str(search.attributes["gen_ai.tool.call.id"]).startswith("call_")
    assert "gecko.operation.status" not in search.attributes  # absent: ended ok
    # Content is not recorded by default.
    assert all("gen_ai.tool.call.arguments" not in (span.attributes or {}) for span in tree.spans)
    assert all("gen_ai.input.messages" not in (span.attributes or {}) for span in tree.spans)


async def test_workflow_fan_out_nests_branches_and_their_agents(spans: InMemorySpanExporter) -> None:
    wf = Workflow("fan")
    wf.add_node("split", lambda ctx: "go")
    wf.add_node("left", _two_tool_agent("left"))
    wf.add_node("right", _two_tool_agent("right"))
    wf.add_node("join", lambda ctx: "joined")
    wf.add_edge("split", "left").add_edge("split", "right")
    wf.add_edge("left", "join").add_edge("right", "join")
    wf.set_entry_point("split")
    await wf.execute("x")

    tree = Tree(spans.get_finished_spans())
    root = tree.one("workflow fan")
    assert tree.parent(root) is None
    assert sorted(span.name for span in tree.children(root)) == ["node join", "node left", "node right", "node split"]
    for branch in ("left", "right"):
        agent = tree.one(f"invoke_agent {branch}")
        assert tree.path(agent) == [f"invoke_agent {branch}", f"node {branch}", "workflow fan"]
        assert sorted(span.name for span in tree.children(agent)) == [
            "chat m-1", "chat m-1", "execute_tool fetch", "execute_tool search",
        ]  # fmt: skip
    assert {span.context.trace_id for span in tree.spans} == {root.context.trace_id}
    assert len(tree.spans) == 1 + 4 + 2 * 5
    assert root.attributes is not None
    assert root.attributes["gecko.workflow.name"] == "fan"
    assert "gecko.operation.status" not in root.attributes


async def test_team_race_of_three_gives_one_trace_with_losers_cancelled(spans: InMemorySpanExporter) -> None:
    def racer(index: int) -> Agent:
        @tool
        async def lookup(city: str) -> str:
            """Look a city up; only member 1 ever answers."""
            if index != 1:
                await anyio.sleep_forever()
            return "found"

        model = ScriptedModel([tool_calls_reply(("lookup", '{"city": "Oslo"}')), reply(f"member {index}")])
        return AgentBuilder().with_model(model).with_tools([lookup]).with_name(f"agent{index}").build()

    results = await Team([racer(i) for i in range(3)], name="race", strategy=ExecutionStrategy.RACE).run("go")
    assert results[0].member_index == 1

    tree = Tree(spans.get_finished_spans())
    root = tree.one("team race")
    assert {span.context.trace_id for span in tree.spans} == {root.context.trace_id}
    assert sorted(span.name for span in tree.children(root)) == ["member race[0]", "member race[1]", "member race[2]"]
    for index in range(3):
        status = "ok" if index == 1 else "cancelled"
        member = tree.one(f"member race[{index}]")
        agent = tree.one(f"invoke_agent agent{index}")
        (tool_span,) = [span for span in tree.children(agent) if span.name == "execute_tool lookup"]
        chain = ["execute_tool lookup", f"invoke_agent agent{index}", f"member race[{index}]", "team race"]
        assert tree.path(tool_span) == chain
        for span in (member, agent, tool_span):
            assert span.attributes is not None
            assert span.attributes.get("gecko.operation.status", "ok") == status, span.name
            # A lost race is not an error.
            assert span.status.status_code is not StatusCode.ERROR
            assert span.end_time is not None
    # 1 team + 3 members + 3 agents + 3 tools + 4 model calls (the winner's two, the losers' one each).
    assert len(tree.spans) == 14


async def test_failures_set_error_status_and_type(spans: InMemorySpanExporter) -> None:
    @tool
    async def broken() -> str:
        """Fails."""
        raise RuntimeError("disk on fire")

    model = ScriptedModel([tool_calls_reply(("broken", "{}")), reply("sorry")])
    await AgentBuilder().with_model(model).with_tools([broken]).with_name("a").build().run("go")
    span = Tree(spans.get_finished_spans()).one("execute_tool broken")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "gecko.errors.ToolExecutionError"
    assert span.attributes["gecko.operation.status"] == "error"


class _HttpModel(FunctionModel):
    """Stands for a gecko-models client, which sends `settings["extra_headers"]` as HTTP headers."""

    provider = "openai"
    sends_extra_headers = True


async def test_model_requests_carry_the_chat_span_as_w3c_traceparent(spans: InMemorySpanExporter) -> None:
    headers: list[dict[str, str]] = []

    def answer(request: ModelRequest) -> ModelResponse:
        headers.append(dict(request.settings["extra_headers"]))
        return reply("hi")

    await AgentBuilder().with_model(_HttpModel(answer, model="gpt-x")).build().run("hello")
    chat = Tree(spans.get_finished_spans()).one("chat gpt-x")
    ((traceparent,),) = [[value for key, value in item.items() if key == "traceparent"] for item in headers]
    flags = int(chat.context.trace_flags)
    assert flags & 1  # sampled
    assert traceparent == f"00-{chat.context.trace_id:032x}-{chat.context.span_id:016x}-{flags:02x}"


async def test_models_without_http_headers_get_no_settings(spans: InMemorySpanExporter) -> None:
    seen: list[dict[str, object]] = []

    def answer(request: ModelRequest) -> ModelResponse:
        seen.append(dict(request.settings))
        return reply("hi")

    await AgentBuilder().with_model(FunctionModel(answer)).build().run("hello")
    assert seen == [{}]


async def test_log_records_carry_the_trace_and_span_of_the_running_tool(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gecko.test.tools"):
        await _two_tool_agent("logger").run("go")
    tree = Tree(spans.get_finished_spans())
    records = {record.getMessage(): record for record in caplog.records if record.name == "gecko.test.tools"}
    for tool_name in ("search", "fetch"):
        span = tree.one(f"execute_tool {tool_name}")
        record = records[f"tool {tool_name} ran"]
        assert record.otelTraceID == f"{span.context.trace_id:032x}"  # type: ignore[attr-defined]
        assert record.otelSpanID == f"{span.context.span_id:016x}"  # type: ignore[attr-defined]
    outside = logging.getLogger("gecko.test.tools").makeRecord("x", logging.INFO, "f", 1, "m", None, None)
    assert (outside.otelTraceID, outside.otelSpanID) == ("0", "0")  # type: ignore[attr-defined]


async def test_an_operation_of_any_other_kind_becomes_a_span_with_its_attributes(spans: InMemorySpanExporter) -> None:
    """What a layer announcing its own operations (retrieval, ingestion) gets without plugin changes."""
    manager = plugin_manager()
    retrieval = cast(Any, "retrieval")  # a kind this plugin has no special case for

    @tool
    async def search(query: str) -> str:
        """Search the knowledge base."""
        attributes = {"collection": "docs", "top_k": 5, "filters": ("lang", "year"), "query": {"text": query}}
        async with manager.operation(retrieval, "docs", input=query, attributes=attributes) as operation:
            operation.attributes["documents"] = 3
            operation.output = ["a", "b", "c"]
        async with manager.operation(retrieval, "docs", attributes={"top_k": 5}):
            raise_lookup_error()
        return "3 documents"

    def raise_lookup_error() -> None:
        raise LookupError("index missing")

    model = ScriptedModel([tool_calls_reply(("search", '{"query": "otters"}')), reply("done")])
    await AgentBuilder().with_model(model).with_tools([search]).with_name("reader").build().run("go")

    tree = Tree(spans.get_finished_spans())
    ok, failed = sorted(tree.named("retrieval docs"), key=lambda span: span.start_time or 0)
    assert tree.path(ok) == ["retrieval docs", "execute_tool search", "invoke_agent reader"]
    assert dict(ok.attributes or {}) == {
        "gecko.operation.kind": "retrieval",
        "gecko.retrieval.collection": "docs",
        "gecko.retrieval.top_k": 5,
        "gecko.retrieval.filters": ("lang", "year"),
        "gecko.retrieval.documents": 3,
    }  # the query (content, not a scalar) is left out
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "LookupError"
    assert failed.attributes["gecko.operation.status"] == "error"
    assert tree.parent(failed) is tree.parent(ok)


async def test_spans_user_code_starts_inside_tools_nodes_and_members_nest_under_geckos(
    spans: InMemorySpanExporter,
) -> None:
    user = trace.get_tracer("user-code")

    def prepare(ctx: NodeContext) -> str:  # a sync node: runs in a worker thread
        with user.start_as_current_span("user prepare"):
            return "go"

    async def member(text: str) -> str:
        with user.start_as_current_span("user member"):
            return text

    wf = Workflow("nest").add_node("prepare", prepare).add_node("read", _two_tool_agent("reader", user_spans=True))
    wf.add_node("team", Team([member], name="t")).add_edge("prepare", "read").add_edge("read", "team")
    wf.set_entry_point("prepare")
    await wf.execute("x")

    # Each body's context was restored: nothing of the run stays current here.
    assert not trace.get_current_span().get_span_context().is_valid
    tree = Tree(spans.get_finished_spans())
    for what in ("search", "fetch"):  # started after the tools awaited each other
        chain = [f"execute_tool {what}", "invoke_agent reader", "node read", "workflow nest"]
        assert tree.path(tree.one(f"user {what}")) == [f"user {what}", *chain]
    assert tree.path(tree.one("user prepare")) == ["user prepare", "node prepare", "workflow nest"]
    assert tree.path(tree.one("user member")) == ["user member", "member t[0]", "team t", "node team", "workflow nest"]
    assert len({span.context.trace_id for span in tree.spans}) == 1
