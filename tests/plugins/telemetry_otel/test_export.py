"""Export paths: OTLP/HTTP to a local receiver, metrics, content capture with redaction."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import anyio
import pytest
from gecko_telemetry_otel import OtelPlugin
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NoOpTracerProvider

from gecko.compose.team import ExecutionStrategy, Team
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.builder import AgentBuilder
from gecko.core.toolbox import tool
from gecko.errors import ConfigurationError
from gecko.plugins import plugin_manager
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.testing.models import FunctionModel, ScriptedModel, reply, tool_calls_reply
from gecko.types import Message


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Receiver", (_Receiver,), {"bodies": bodies})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/traces", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _registered(plugin: OtelPlugin) -> Iterator[OtelPlugin]:
    manager = plugin_manager()
    manager.register(plugin)
    try:
        yield plugin
    finally:
        manager.unregister(plugin)


def _racer(index: int) -> Agent:
    @tool
    async def lookup(city: str) -> str:
        """Look a city up; only member 0 answers."""
        if index:
            await anyio.sleep_forever()
        return "found"

    model = ScriptedModel([tool_calls_reply(("lookup", '{"city": "Oslo"}')), reply(f"member {index}")])
    return AgentBuilder().with_model(model).with_tools([lookup]).with_name(f"agent{index}").build()


async def test_team_race_exports_over_otlp_http(receiver: tuple[str, list[bytes]]) -> None:
    endpoint, bodies = receiver
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    for _ in _registered(OtelPlugin(tracer_provider=provider)):
        await Team([_racer(i) for i in range(3)], name="race", strategy=ExecutionStrategy.RACE).run("go")
    assert await anyio.to_thread.run_sync(provider.force_flush)
    await anyio.to_thread.run_sync(provider.shutdown)

    spans = []
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans += [span for resource in request.resource_spans for scope in resource.scope_spans for span in scope.spans]
    by_id = {span.span_id: span for span in spans}
    assert len(spans) == 14
    assert len({span.trace_id for span in spans}) == 1

    def status(span: Any) -> str:
        values = [a.value.string_value for a in span.attributes if a.key == "gecko.operation.status"]
        return values[0] if values else "ok"

    (team,) = [span for span in spans if span.name == "team race"]
    assert team.parent_span_id == b""
    for span in spans:
        if span.name == "execute_tool lookup":
            agent = by_id[span.parent_span_id]
            member = by_id[agent.parent_span_id]
            assert by_id[member.parent_span_id] is team
            expected = "ok" if agent.name == "invoke_agent agent0" else "cancelled"
            assert [status(span), status(agent), status(member)] == [expected] * 3


@pytest.mark.parametrize("spans", ["sdk", "none"])
async def test_metrics_token_usage_durations_tool_counts_and_node_durations(spans: str) -> None:
    """Metrics are the same whether or not spans are recorded (a tracer provider other than the SDK's records none)."""
    reader = InMemoryMetricReader()
    tracer_provider = TracerProvider() if spans == "sdk" else NoOpTracerProvider()

    @tool
    async def good() -> str:
        """Works."""
        return "fine"

    @tool
    async def bad() -> str:
        """Fails."""
        raise RuntimeError("nope")

    model = ScriptedModel(
        [tool_calls_reply(("good", "{}"), ("bad", "{}"), input_tokens=7, output_tokens=3), reply("done")],
        model="m-2",
    )
    agent = AgentBuilder().with_model(model).with_tools([good, bad]).with_name("a").build()
    wf = Workflow("wf")
    wf.add_node("first", agent)
    wf.add_node("second", lambda ctx: "ok")
    wf.add_edge("first", "second")
    wf.set_entry_point("first")
    for _ in _registered(OtelPlugin(tracer_provider=tracer_provider, meter_provider=MeterProvider([reader]))):
        await wf.execute("x")

    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)

    tokens = {(p.attributes["gen_ai.token.type"], p.sum, p.count) for p in points["gen_ai.client.token.usage"]}
    assert tokens == {("input", 17, 2), ("output", 8, 2)}
    (duration,) = points["gen_ai.client.operation.duration"]
    assert duration.count == 2
    assert duration.attributes["gen_ai.request.model"] == "m-2"
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    calls = {
        (p.attributes["gen_ai.tool.name"], p.attributes["gecko.operation.status"], p.value)
        for p in points["gecko.tool.calls"]
    }
    assert calls == {("good", "ok", 1), ("bad", "error", 1)}
    (failure,) = points["gecko.tool.failures"]
    assert (failure.attributes["gen_ai.tool.name"], failure.value) == ("bad", 1)
    nodes = {(p.attributes["gecko.workflow.node"], p.count) for p in points["gecko.workflow.node.duration"]}
    assert nodes == {("first", 1), ("second", 1)}


async def test_content_is_captured_redacted_only_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    @tool
    async def login(user: str, password: str) -> str:
        """Log in."""
        return "token=abcdef123456 issued"

    def agent() -> Agent:
        model = ScriptedModel(
            [tool_calls_reply(("login", '{"user": "ann", "password": "hunter2-secret"}')), reply("logged in")]
        )
        return AgentBuilder().with_model(model).with_tools([login]).with_name("a").build()

    message = "use api_key=sk-live-0123456789abcdef please"
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    for _ in _registered(OtelPlugin(tracer_provider=provider)):
        await agent().run(message)
    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    tool_span = spans["execute_tool login"]
    assert tool_span["gen_ai.tool.call.arguments"] == '{"user": "ann", "password": [REDACTED]}'
    assert tool_span["gen_ai.tool.call.result"] == "token=[REDACTED] issued"
    first_chat = min(
        (span for span in exporter.get_finished_spans() if span.name.startswith("chat")),
        key=lambda span: span.start_time or 0,
    )
    inputs = json.loads(str((first_chat.attributes or {})["gen_ai.input.messages"]))
    (user,) = [m for m in inputs if m["role"] == "user"]
    assert user["content"] == "use api_key=[REDACTED] please"
    assert "sk-live" not in json.dumps(spans)

    exporter.clear()
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    for _ in _registered(OtelPlugin(tracer_provider=provider)):
        await agent().run(message)
    recorded = [dict(span.attributes or {}) for span in exporter.get_finished_spans()]
    assert len(recorded) == 4
    assert not any(
        key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.tool.call.a", "gen_ai.tool.call.r"))
        for attributes in recorded
        for key in attributes
    )


@pytest.fixture
def installed_plugin_aside() -> Iterator[None]:
    """The installed `otel` plugin steps aside (it would write its own span's `traceparent`)."""
    manager = plugin_manager()
    installed = manager.get_plugin("otel")
    if installed is not None:
        manager.unregister(installed)
    yield
    if installed is not None:
        manager.register(installed, "otel")


class _HttpModel(FunctionModel):
    sends_extra_headers = True


@pytest.mark.parametrize(("sampler", "sampled"), [(ALWAYS_OFF, False), (None, True)], ids=["off", "default"])
@pytest.mark.usefixtures("installed_plugin_aside")
async def test_the_providers_sampler_decides_at_the_root_and_children_follow(sampler: Any, sampled: bool) -> None:
    headers: list[str] = []

    def answer(request: ModelRequest) -> ModelResponse:
        headers.append(request.settings["extra_headers"]["traceparent"])
        return reply("hi")

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for _ in _registered(OtelPlugin(tracer_provider=provider)):
        await AgentBuilder().with_model(_HttpModel(answer)).with_name("a").build().run("hello")
    assert len(exporter.get_finished_spans()) == (2 if sampled else 0)
    # Recorded or not, the request carries the trace context, the decision in its flags (random id: 02).
    (traceparent,) = headers
    assert traceparent.endswith("-03" if sampled else "-02")


class _UnreadableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this message cannot be read")


async def test_text_otlp_cannot_encode_and_unreadable_errors_still_export_every_span_and_metric(
    receiver: tuple[str, list[bytes]],
) -> None:
    """Lone surrogates (in names, a provider's reply, captured content) and an exception whose `str()` fails
    once made the exporter drop the span's whole batch, or the hook drop the span: now U+FFFD and a placeholder."""
    endpoint, bodies = receiver
    kept = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    reader = InMemoryMetricReader()

    def odd(request: ModelRequest) -> ModelResponse:
        return ModelResponse(message=Message.assistant("hi \ud800"), model="m\udc00")

    def unreadable(request: ModelRequest) -> ModelResponse:
        raise _UnreadableError

    wf = Workflow("w\ud800")
    wf.add_node("n\udc00", AgentBuilder().with_model(FunctionModel(odd)).with_name("a\ud800").build())
    failing = AgentBuilder().with_model(FunctionModel(unreadable)).with_name("failing").build()
    wf.set_entry_point("n\udc00")
    plugin = OtelPlugin(tracer_provider=provider, meter_provider=MeterProvider([reader]), capture_content=True)
    for _ in _registered(plugin):
        await wf.execute("x")
        with pytest.raises(_UnreadableError):
            await failing.run("x")
    assert await anyio.to_thread.run_sync(provider.force_flush)
    await anyio.to_thread.run_sync(provider.shutdown)

    names = sorted(span.name for span in kept.get_finished_spans())
    assert names == [
        "chat function",
        "chat function",
        "invoke_agent a\ufffd",
        "invoke_agent failing",
        "node n\ufffd",
        "workflow w\ufffd",
    ]
    spans = []
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans += [span for resource in request.resource_spans for scope in resource.scope_spans for span in scope.spans]
    assert sorted(span.name for span in spans) == names
    attributes = {(a.key, a.value.string_value) for span in spans for a in span.attributes}
    assert ("gen_ai.response.model", "m\ufffd") in attributes
    assert ("gen_ai.agent.name", "a\ufffd") in attributes
    assert any(key == "gen_ai.output.messages" and "hi \ufffd" in value for key, value in attributes)
    failed = {span.status.message for span in spans if span.name.endswith("failing") or span.status.message}
    assert failed == {"<_UnreadableError whose message cannot be read>"}

    data = reader.get_metrics_data()
    assert data is not None
    encode_metrics(data).SerializeToString()  # what the OTLP metric exporter sends; it raised on a lone surrogate
    labels = {
        value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
        for value in (point.attributes or {}).values()
    }
    assert {"w\ufffd", "n\ufffd"} <= labels


def _capturing(exporter: InMemorySpanExporter, **settings: Any) -> OtelPlugin:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelPlugin(tracer_provider=provider, capture_content=True, **settings)


def _huge_tool_agent(result: str) -> Agent:
    @tool
    async def dump(path: str) -> str:
        """Read a file."""
        return result

    model = ScriptedModel([tool_calls_reply(("dump", '{"path": "' + "p" * 20_000 + '"}')), reply("read")])
    return AgentBuilder().with_model(model).with_tools([dump]).with_name("a").build()


async def test_captured_content_is_cut_to_the_default_length_and_marked() -> None:
    # A 5 MB tool result, a 20 000-character argument, and the second request carrying both.
    exporter = InMemorySpanExporter()
    for _ in _registered(_capturing(exporter)):
        await _huge_tool_agent("r" * 5_000_000).run("read it")

    mark = " [... truncated to 8192 characters]"
    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    tool_span = spans["execute_tool dump"]
    assert tool_span["gen_ai.tool.call.result"] == "r" * 8192 + mark
    assert tool_span["gen_ai.tool.call.arguments"] == '{"path": "' + "p" * 8182 + mark
    chats = sorted(
        (span for span in exporter.get_finished_spans() if span.name.startswith("chat")),
        key=lambda span: span.start_time or 0,
    )
    second_input = str((chats[1].attributes or {})["gen_ai.input.messages"])
    assert len(second_input) == 8192 + len(mark)
    assert second_input.startswith('[{"role": "user", "content": "read it"}')
    assert second_input.endswith(mark)
    first_output = str((chats[0].attributes or {})["gen_ai.output.messages"])
    assert first_output.endswith(mark)
    # Short content is whole, with no mark.
    assert json.loads(str((chats[0].attributes or {})["gen_ai.input.messages"])) == [
        {"role": "user", "content": "read it"}
    ]
    assert json.loads(str((chats[1].attributes or {})["gen_ai.output.messages"])) == [
        {"role": "assistant", "content": "read"}
    ]


async def test_the_content_length_is_set_in_code_or_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_OTEL_MAX_CONTENT_LENGTH", "100")
    exporter = InMemorySpanExporter()
    for _ in _registered(_capturing(exporter)):
        await _huge_tool_agent("r" * 1000).run("read it")
    for _ in _registered(_capturing(exporter, max_content_length=50)):
        await _huge_tool_agent("s" * 1000).run("read it")

    results = [
        (span.attributes or {})["gen_ai.tool.call.result"]
        for span in exporter.get_finished_spans()
        if span.name == "execute_tool dump"
    ]
    assert results == [
        "r" * 100 + " [... truncated to 100 characters]",
        "s" * 50 + " [... truncated to 50 characters]",
    ]


async def test_a_secret_where_content_is_cut_stays_redacted() -> None:
    secret = "sk-live-0123456789abcdef0123456789abcdef"
    exporter = InMemorySpanExporter()
    for _ in _registered(_capturing(exporter, max_content_length=100)):
        # The key starts before the cut and ends after it; what is kept of it is still recognised as a key.
        await _huge_tool_agent("x" * 90 + f" {secret} " + "y" * 5000).run("read it")

    (result,) = [
        (span.attributes or {})["gen_ai.tool.call.result"]
        for span in exporter.get_finished_spans()
        if span.name == "execute_tool dump"
    ]
    assert result == "x" * 90 + " [REDACTED " + "[... truncated to 100 characters]"
    assert "sk-live" not in json.dumps([dict(span.attributes or {}) for span in exporter.get_finished_spans()])


# "²" is a digit to str.isdigit that int() refuses; 5000 digits pass Python's limit for int(): both were a ValueError.
@pytest.mark.parametrize("value", ["0", "-5", "many", "8k", "\u00b2", "1" * 5000])
def test_a_content_length_that_is_not_a_positive_integer_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GECKO_OTEL_MAX_CONTENT_LENGTH", value)
    with pytest.raises(ConfigurationError, match="GECKO_OTEL_MAX_CONTENT_LENGTH must be a positive number"):
        OtelPlugin(tracer_provider=TracerProvider())
    monkeypatch.delenv("GECKO_OTEL_MAX_CONTENT_LENGTH")
    with pytest.raises(ConfigurationError, match="max_content_length must be a positive number"):
        OtelPlugin(tracer_provider=TracerProvider(), max_content_length=0)
