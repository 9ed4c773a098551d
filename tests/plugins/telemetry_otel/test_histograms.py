"""Histograms aggregated by the plugin export the data points `Histogram.record` gives."""

from __future__ import annotations

from typing import Any

from gecko_telemetry_otel import attributes as attr
from gecko_telemetry_otel._histograms import Histograms, LocalHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

SCOPE = InstrumentationScope("gecko_telemetry_otel", "1")
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "p", "gen_ai.request.model": "m"}
# Values on, between and beyond the bucket bounds, ints and floats, for two attribute sets.
TOKENS = [("in", 0), ("in", 1), ("in", 4), ("in", 5), ("out", 16), ("out", 17), ("in", 67_108_864), ("in", 10**9)]
SECONDS = [0.0, 0.01, 0.010001, 0.5, 81.92, 100.25]


def _record(provider: MeterProvider) -> tuple[Histograms, LocalHistogram]:
    histograms = Histograms(provider.get_meter(SCOPE.name, SCOPE.version), provider, SCOPE)
    tokens = histograms.create(attr.METRIC_TOKEN_USAGE, "{token}", "Tokens", attr.TOKEN_USAGE_BUCKETS)
    duration = histograms.create(attr.METRIC_OPERATION_DURATION, "s", "Duration", attr.DURATION_BUCKETS)
    labels = {kind: {**CHAT, "gen_ai.token.type": kind} for kind in ("in", "out")}
    # All token values in one call (pairwise), the durations one call each.
    histograms.record([(tokens, kind, labels[kind]) for kind, _ in TOKENS], [value for _, value in TOKENS])
    for value in SECONDS:
        histograms.record([(duration, "chat", CHAT)], [value])
    return histograms, duration


def _points(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert (scope.scope.name, scope.scope.version) == (SCOPE.name, SCOPE.version)
            for metric in scope.metrics:
                points = []
                for point in metric.data.data_points:
                    assert 0 < point.start_time_unix_nano <= point.time_unix_nano
                    fields = (point.count, point.sum, tuple(point.bucket_counts), tuple(point.explicit_bounds))
                    extremes = (point.min, point.max, list(point.exemplars))
                    points.append((sorted(point.attributes.items()), fields, *extremes))
                temporality = metric.data.aggregation_temporality
                found[metric.name] = (metric.unit, metric.description, temporality, sorted(points))
    return found


def test_local_aggregates_equal_what_record_exports_across_collections() -> None:
    local_reader, sdk_reader = InMemoryMetricReader(), InMemoryMetricReader()
    local = _record(MeterProvider([local_reader]))
    # A view, even one for another instrument, sends every value through `Histogram.record`.
    sdk = _record(MeterProvider([sdk_reader], views=[View(instrument_name="another")]))
    assert local[0].joined
    assert not sdk[0].joined
    first = _points(sdk_reader)
    assert _points(local_reader) == first
    assert first[attr.METRIC_TOKEN_USAGE][3][0][1][0] == 6  # the six "in" values, one point

    for histograms, duration in (local, sdk):  # cumulative: a second round adds to the first
        histograms.record([(duration, "chat", CHAT)], [0.3])
    second = _points(sdk_reader)
    assert _points(local_reader) == second
    assert second[attr.METRIC_OPERATION_DURATION][3][0][1][0] == len(SECONDS) + 1


def test_a_reader_wanting_delta_histograms_gets_them_through_record() -> None:
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    histograms, _ = _record(MeterProvider([reader]))
    assert not histograms.joined
    (tokens,) = [m for m in _points(reader).values() if m[0] == "{token}"]
    assert tokens[2] is AggregationTemporality.DELTA
