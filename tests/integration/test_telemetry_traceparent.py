"""A real litellm model request carries the W3C `traceparent` of its `chat` span (gecko-ai-models + otel)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gecko_models import FallbackModel, LiteLLMChat
from gecko_telemetry_otel import OtelPlugin
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gecko.core.builder import AgentBuilder
from gecko.plugins import plugin_manager
from gecko.plugins.models import ChatModel, RetryPolicy
from gecko.testing.server import OpenAIServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # litellm's client runs on asyncio only (the otel plugin itself is tested on trio too)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Spans of an `OtelPlugin` registered for this test only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugin = OtelPlugin(tracer_provider=provider)
    manager = plugin_manager()
    # In `tests_all` the installed plugin is loaded too (with another test tree's global provider):
    # it would send its own span's traceparent, so it steps aside for this test.
    installed = manager.get_plugin("otel")
    if installed is not None:
        manager.unregister(installed)
    manager.register(plugin)
    yield exporter  # pytest runs the rest whatever the test did
    manager.unregister(plugin)
    if installed is not None:
        manager.register(installed, "otel")


def _chat(server: OpenAIServer) -> LiteLLMChat:
    return LiteLLMChat("openai/m", api_key="k", api_base=server.base_url, retry=RetryPolicy(max_attempts=1))


@pytest.mark.parametrize("fallback", [False, True], ids=["litellm", "fallback"])
async def test_model_requests_send_the_chat_spans_traceparent(exporter: InMemorySpanExporter, fallback: bool) -> None:
    async with OpenAIServer(["hello there"]) as server:
        model: ChatModel = FallbackModel([_chat(server), _chat(server)]) if fallback else _chat(server)
        assert model.sends_extra_headers
        output = await AgentBuilder().with_model(model).with_name("greeter").build().run("hi")
        (request,) = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert output.content == "hello there"
    (chat,) = [span for span in exporter.get_finished_spans() if span.name.startswith("chat")]
    flags = int(chat.context.trace_flags)
    headers = {key.lower(): value for key, value in request.headers.items()}
    assert headers["traceparent"] == f"00-{chat.context.trace_id:032x}-{chat.context.span_id:016x}-{flags:02x}"
    assert "extra_headers" not in request.json()  # sent as headers, not in the body


async def test_a_fallback_over_a_model_without_headers_sends_none() -> None:
    class Local(LiteLLMChat):
        sends_extra_headers = False

    async with OpenAIServer([]) as server:
        assert not FallbackModel(
            [_chat(server), Local("openai/m", api_key="k", api_base=server.base_url)]
        ).sends_extra_headers
