"""The global OpenTelemetry providers the installed `otel` plugin reports to, in memory.

They are set once per process (OpenTelemetry refuses a second global provider); each test
starts from an empty exporter.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gecko.plugins import plugin_manager

EXPORTER = InMemorySpanExporter()


def pytest_configure(config: pytest.Config) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    records = {record.name: record.status for record in plugin_manager().load_plugins()}
    assert records.get("otel") == "loaded", records
    EXPORTER.clear()
    return EXPORTER
