"""Histograms aggregated in plain Python and joined to the OpenTelemetry SDK's collections.

`Histogram.record` costs the SDK about 80 000 instructions a call (attribute hashing, a
measurement object, the exemplar filter, locks), and an agent run records six. The Python SDK
has no `MetricProducer` for aggregates made elsewhere (opentelemetry-python#4768), so when a
meter provider is an SDK `MeterProvider` without views whose readers all want cumulative
histograms, each reader's collection gets these aggregates as the data points `record` would
have produced. Otherwise (another provider, views, delta temporality, an SDK whose internals
moved) every value goes to `Histogram.record`.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import partial
from math import inf
from typing import Any, cast

from opentelemetry import metrics
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

_Collect = Callable[..., "MetricsData | None"]


@dataclass(slots=True)
class _Point:
    """One attribute set's aggregate since it was first recorded (cumulative)."""

    attributes: dict[str, Any]
    start_ns: int
    counts: list[int]
    count: int = 0
    total: float = 0
    low: float = inf
    high: float = -inf


@dataclass(slots=True)
class LocalHistogram:
    """A histogram with explicit bucket bounds; `sdk` is its SDK instrument, used when not local."""

    name: str
    unit: str
    description: str
    bounds: tuple[float, ...]
    sdk: metrics.Histogram
    points: dict[Hashable, _Point] = field(default_factory=dict)

    def add(self, key: Hashable, attributes: dict[str, Any], value: float) -> None:
        point = self.points.get(key)
        if point is None:
            point = self.points[key] = _Point(attributes, time.time_ns(), [0] * (len(self.bounds) + 1))
        point.count += 1
        point.total += value
        if value < point.low:
            point.low = value
        if value > point.high:
            point.high = value
        point.counts[bisect_left(self.bounds, value)] += 1

    def metric(self, now_ns: int) -> Metric | None:
        if not self.points:
            return None
        points = [
            HistogramDataPoint(
                attributes=dict(point.attributes),
                start_time_unix_nano=point.start_ns,
                time_unix_nano=now_ns,
                count=point.count,
                sum=point.total,
                bucket_counts=tuple(point.counts),
                explicit_bounds=self.bounds,
                min=point.low,
                max=point.high,
            )
            for point in self.points.values()
        ]
        return Metric(self.name, self.description, self.unit, HistogramData(points, AggregationTemporality.CUMULATIVE))


Series = tuple[LocalHistogram, Hashable, dict[str, Any]]
"""A histogram, a key, and the attribute set that key stands for."""


class Histograms:
    """The plugin's histograms on one meter provider (the global one when None)."""

    def __init__(
        self, meter: metrics.Meter, meter_provider: metrics.MeterProvider | None, scope: InstrumentationScope
    ) -> None:
        self._meter = meter
        self._provider = meter_provider
        self._scope = scope
        self._seen: metrics.MeterProvider | None = None
        self._local = False
        self._lock = threading.Lock()
        self._histograms: list[LocalHistogram] = []

    def create(self, name: str, unit: str, description: str, bounds: Sequence[float]) -> LocalHistogram:
        sdk = self._meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=bounds
        )
        histogram = LocalHistogram(name, unit, description, tuple(bounds), sdk)
        self._histograms.append(histogram)
        return histogram

    @property
    def joined(self) -> bool:
        """Whether values are aggregated here and joined to the readers' collections (decided at the first value)."""
        return self._local

    def record(self, series: Sequence[Series], values: Sequence[float]) -> None:
        """Add each value to its series (as many of each; series built once by the caller), under one lock."""
        provider = self._provider or metrics.get_meter_provider()
        if provider is not self._seen:
            self._local = self._join(provider)
            self._seen = provider
        if not self._local:
            for (histogram, _, attributes), value in zip(series, values, strict=True):
                histogram.sdk.record(value, attributes)
            return
        with self._lock:
            for (histogram, key, attributes), value in zip(series, values, strict=True):
                if value >= 0:  # as the SDK, which ignores negative values
                    histogram.add(key, attributes, value)

    def _join(self, provider: metrics.MeterProvider) -> bool:
        """Make every reader of an SDK `provider` collect these histograms too; False if it cannot."""
        # The SDK internals this reads: the provider's configuration and readers, and the
        # collect callback and histogram temporality of each reader.
        config = getattr(provider, "_sdk_config", None)
        readers: Sequence[MetricReader] | None = getattr(provider, "_metric_readers", None)
        if not isinstance(provider, SdkMeterProvider) or config is None or readers is None or config.views:
            return False
        for reader in readers:
            temporalities = getattr(reader, "_instrument_class_temporality", {})
            histogram_temporalities = {
                temporality for kind, temporality in temporalities.items() if issubclass(kind, SdkHistogram)
            }
            if getattr(reader, "_collect", None) is None or histogram_temporalities != {
                AggregationTemporality.CUMULATIVE
            }:
                return False
        for reader in readers:
            collect = cast(_Collect, reader._collect)
            reader._set_collect_callback(cast(Any, partial(self._collect, collect, config.resource)))
        return True

    def _collect(
        self, collect: _Collect, resource: Resource, reader: MetricReader, **options: Any
    ) -> MetricsData | None:
        """What the SDK collected for `reader`, with these histograms in the plugin's scope."""
        data = collect(reader, **options)
        now = time.time_ns()
        with self._lock:
            ours = [metric for metric in (h.metric(now) for h in self._histograms) if metric is not None]
        if not ours:
            return data
        resources = list(data.resource_metrics) if data is not None else []
        if not resources:
            resources.append(ResourceMetrics(resource, [], resource.schema_url or ""))
        first = resources[0]
        scopes = list(first.scope_metrics)
        for index, scope in enumerate(scopes):
            if scope.scope == self._scope:
                scopes[index] = ScopeMetrics(scope.scope, [*scope.metrics, *ours], scope.schema_url)
                break
        else:
            scopes.append(ScopeMetrics(self._scope, ours, self._scope.schema_url or ""))
        resources[0] = ResourceMetrics(first.resource, scopes, first.schema_url)
        return MetricsData(resources)
