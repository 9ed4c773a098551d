"""The global OpenTelemetry provider the installed `otel` plugin reports to, in memory.

It is set once per process (OpenTelemetry refuses a second global provider). Spans are kept only
while a test uses the `spans` fixture, which starts empty: other test trees run in the same
process (`nox -s tests_all`) and must not accumulate their spans here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gecko.plugins import plugin_manager


class _GatedExporter(InMemorySpanExporter):
    """Keeps finished spans only while `recording` is set."""

    recording = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return super().export(spans) if self.recording else SpanExportResult.SUCCESS


EXPORTER = _GatedExporter()


def pytest_configure(config: pytest.Config) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    records = {record.name: record.status for record in plugin_manager().load_plugins()}
    assert records.get("otel") == "loaded", records
    EXPORTER.clear()
    EXPORTER.recording = True
    try:
        yield EXPORTER
    finally:
        EXPORTER.recording = False
        EXPORTER.clear()
