"""OpenTelemetry for Gecko: a span per agent run, model call, tool call, workflow run and node,
team run and member, and per operation of any other kind announced through the operation hooks
(retrieval, ingestion); GenAI metrics; trace ids on log records.

Installed, it is loaded as the `otel` hook plugin and reports to the global OpenTelemetry
providers (`opentelemetry.trace.set_tracer_provider(...)`, `metrics.set_meter_provider(...)`),
so configure the SDK as for any instrumentation. To report elsewhere, disable the entry point
(`GECKO_DISABLED_PLUGINS=otel`) and register your own `OtelPlugin(tracer_provider=...)` with
`gecko.plugins.plugin_manager().register(...)`.

Spans follow the GenAI semantic conventions (`invoke_agent <agent>`, `chat <model>`,
`execute_tool <tool>`); workflows and teams, which no convention covers, use `gecko.*`
attributes (see `gecko_telemetry_otel.attributes`). A failed operation's span has an error
status, `error.type` and `gecko.operation.status=error`. A cancelled operation (a RACE loser, a
stopped stream) is not an error: its span ends with `gecko.operation.status=cancelled` and an
unset status. A span without `gecko.operation.status` ended ok. While a bound operation's body
runs (a tool call, a workflow run or node, a team run or member), its span is the current
OpenTelemetry span, so spans user code starts there are its children.

Message and tool content is recorded only when `capture_content=True` or the environment sets
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, and then with secrets redacted and each
attribute cut to `max_content_length` characters (`GECKO_OTEL_MAX_CONTENT_LENGTH`, default 8192),
marked `[... truncated to N characters]`.
Text from outside Gecko's code (names, a provider's model name, captured content, error messages)
has each lone surrogate replaced by U+FFFD where it enters a span or a metric label: OTLP cannot
encode one, and the exporter would drop the span's whole batch with it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes

from gecko.errors import ConfigurationError
from gecko.plugins import hookimpl
from gecko.plugins._text import text_of, valid_text
from gecko.plugins.hookspecs import Operation
from gecko.plugins.manager import current_operation
from gecko.plugins.models import ModelRequest, ModelResponse
from gecko.redaction import redact
from gecko.types import Message, ToolCall
from gecko_telemetry_otel import attributes as attr
from gecko_telemetry_otel._histograms import Histograms, Series
from gecko_telemetry_otel._version import __version__

__all__ = ("OtelPlugin", "plugin", "__version__")

_SCOPE = "gecko_telemetry_otel"


@dataclass(slots=True)
class _Open:
    """An operation still running: what its span will be made of when it ends."""

    name: str
    kind: SpanKind
    attributes: dict[str, Any]
    context: SpanContext | None  # None when no SDK tracer records spans
    parent: SpanContext | None
    start_ns: int
    recording: bool
    token: Token[Context] | None = None  # restores the OpenTelemetry context the operation's body ran in


@dataclass(frozen=True, slots=True)
class _Pipeline:
    """Where finished spans go: the span processors and settings of an SDK tracer."""

    processor: SpanProcessor
    resource: Resource
    sampler: Sampler
    ids: IdGenerator
    limits: SpanLimits

    def bounded(self, attributes: dict[str, Any]) -> Attributes:
        """The attributes as they are, or within the span limits when they exceed them."""
        limits = self.limits
        most = limits.max_span_attributes
        if limits.max_span_attribute_length is None and (most is None or len(attributes) <= most):
            return attributes
        return BoundedAttributes(
            limits.max_span_attributes, attributes, immutable=True, max_value_len=limits.max_span_attribute_length
        )


_UNSET = Status(StatusCode.UNSET)


class OtelPlugin:
    """The hook implementations: spans from `gecko_operation_started` / `_ended`, plus metrics.

    Spans are recorded by the plugin itself, not through `Tracer.start_span`: an operation's
    start takes its ids and start time, its end hands one finished `ReadableSpan` to the span
    processors of the tracer provider (`on_end`; `on_start` is not called). The provider's
    sampler decides at each trace root the plugin starts; its spans' children follow that
    decision (as the default parent-based sampler does).

    Args:
        tracer_provider: Where spans go; the global provider when None. It must be an SDK
            `TracerProvider` (any other records no spans).
        meter_provider: Where metrics go; the global provider when None.
        capture_content: Record (redacted) messages, tool arguments and results; when None,
            the `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` variable decides (off
            unless `true`).
        max_content_length: The most characters of captured content one span attribute keeps; longer
            content is cut there and marked `[... truncated to N characters]`. When None, the
            `GECKO_OTEL_MAX_CONTENT_LENGTH` variable decides (8192 when unset).

    Raises:
        ConfigurationError: `max_content_length` (or its variable) is not a positive integer.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        capture_content: bool | None = None,
        max_content_length: int | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._pipeline_of: tuple[trace.TracerProvider | None, _Pipeline | None] = (None, None)
        self._scope = InstrumentationScope(_SCOPE, __version__)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
        if capture_content is None:
            capture_content = os.environ.get(attr.CAPTURE_CONTENT_VARIABLE, "").strip().lower() == "true"
        self.capture_content = capture_content
        self.max_content_length = _content_length(max_content_length)
        self._open: dict[str, _Open] = {}
        # Model-call metric series by (provider, request model, error type): built once each.
        self._model_labels: dict[tuple[str, str, str | None], tuple[Series, Series, Series]] = {}
        # Tool calls by (tool, status) and failures by (tool, error type), counted here and reported
        # at each collection: a dict update per call instead of an SDK measurement.
        self._tool_calls: dict[tuple[str, str], int] = {}
        self._tool_failures: dict[tuple[str, str], int] = {}
        self._histograms = Histograms(meter, meter_provider, self._scope)
        self._token_usage = self._histograms.create(
            attr.METRIC_TOKEN_USAGE, "{token}", "Tokens used by model calls", attr.TOKEN_USAGE_BUCKETS
        )
        self._duration = self._histograms.create(
            attr.METRIC_OPERATION_DURATION, "s", "Duration of model calls", attr.DURATION_BUCKETS
        )
        self._node_duration = self._histograms.create(
            attr.METRIC_NODE_DURATION, "s", "Duration of workflow nodes", attr.DURATION_BUCKETS
        )
        meter.create_observable_counter(
            attr.METRIC_TOOL_CALLS,
            [self._observe_tool_calls],
            unit="{call}",
            description="Tool calls run",
        )
        meter.create_observable_counter(
            attr.METRIC_TOOL_FAILURES,
            [self._observe_tool_failures],
            unit="{call}",
            description="Tool calls that failed",
        )
        _install_log_correlation(self)

    # --- hooks ---------------------------------------------------------------------------

    @hookimpl
    def gecko_operation_started(self, operation: Operation) -> None:
        """Take the operation's span ids under its parent's (or the restored, or the caller's) span."""
        name, span_kind, attributes = _describe(operation)
        parent = self._open.get(operation.parent.id) if operation.parent is not None else None
        above: SpanContext | None
        if parent is not None:
            # A child follows its parent's sampling decision.
            pipeline, above, recording = self._pipeline_of[1], parent.context, parent.recording
            trace_id = 0 if above is None else above.trace_id
            trace_flags, trace_state = (None, None) if above is None else (above.trace_flags, above.trace_state)
        else:
            pipeline = self._pipeline()
            recording, trace_flags, trace_state, above = False, None, None, None
            if pipeline is not None:
                context = propagate.extract(operation.carrier) if operation.carrier else None
                above = trace.get_current_span(context).get_span_context()
                if not above.is_valid:
                    above = None
                trace_id = pipeline.ids.generate_trace_id() if above is None else above.trace_id
                sampled = pipeline.sampler.should_sample(context, trace_id, name, span_kind, attributes)
                recording = sampled.decision is not Decision.DROP
                attributes = dict(sampled.attributes)  # as the SDK: the span starts with what the sampler returns
                random_id = pipeline.ids.is_trace_id_random() if above is None else above.trace_flags.random_trace_id
                trace_flags = TraceFlags(
                    (TraceFlags.SAMPLED if sampled.decision is Decision.RECORD_AND_SAMPLE else TraceFlags.DEFAULT)
                    | (TraceFlags.RANDOM_TRACE_ID if random_id else TraceFlags.DEFAULT)
                )
                trace_state = sampled.trace_state
        own = None
        if pipeline is not None and trace_flags is not None:
            own = SpanContext(trace_id, pipeline.ids.generate_span_id(), False, trace_flags, trace_state)
        opened = self._open[operation.id] = _Open(name, span_kind, attributes, own, above, time.time_ns(), recording)
        if own is None:
            return
        if operation.bound:
            # The body (a tool, a node, a member) runs with this span current, so the spans user code
            # starts there are its children; `gecko_operation_ended` restores the context in this task.
            opened.token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(own)))
        kind = operation.kind
        if kind == "workflow.run":
            # What the checkpoint keeps, so a resume in another process continues this trace.
            operation.carrier.clear()
            propagate.inject(operation.carrier, trace.set_span_in_context(NonRecordingSpan(own)))
        elif kind == "model.call" and operation.attributes.get("sends_extra_headers"):
            request: ModelRequest = operation.input
            headers = dict(request.settings.get("extra_headers") or {})
            propagate.inject(headers, trace.set_span_in_context(NonRecordingSpan(own)))
            request.settings["extra_headers"] = headers

    @hookimpl
    def gecko_operation_ended(self, operation: Operation) -> None:
        """Record the outcome and metrics, and hand the finished span to the span processors."""
        opened = self._open.pop(operation.id, None)
        if opened is None:
            return
        if opened.token is not None:
            otel_context.detach(opened.token)
        end_ns = time.time_ns()
        error_type = None if operation.status == "ok" else _error_type(operation)
        finish = _FINISHERS.get(operation.kind, OtelPlugin._finish_generic)
        details = finish(self, operation, (end_ns - opened.start_ns) / 1e9, error_type)
        pipeline = self._pipeline_of[1]
        if not opened.recording or pipeline is None:
            return
        attributes = opened.attributes
        attributes.update(details)
        status = _UNSET
        if operation.status != "ok":
            attributes[attr.GECKO_OPERATION_STATUS] = operation.status
            if operation.status == "error":
                if error_type is not None:
                    attributes[attr.ERROR_TYPE] = error_type
                error = operation.error
                status = Status(StatusCode.ERROR, None if error is None else valid_text(text_of(error)[:1024]))
        pipeline.processor.on_end(
            ReadableSpan(
                opened.name,
                opened.context,
                opened.parent,
                pipeline.resource,
                pipeline.bounded(attributes),
                kind=opened.kind,
                status=status,
                start_time=opened.start_ns,
                end_time=end_ns,
                instrumentation_scope=self._scope,
            )
        )

    def _pipeline(self) -> _Pipeline | None:
        """The SDK tracer's pipeline of the configured (or the current global) provider, or None."""
        provider = self._tracer_provider or trace.get_tracer_provider()
        seen, pipeline = self._pipeline_of
        if provider is not seen:
            tracer = provider.get_tracer(_SCOPE, __version__)
            pipeline = None
            if isinstance(tracer, SdkTracer):
                pipeline = _Pipeline(
                    tracer.span_processor, tracer.resource, tracer.sampler, tracer.id_generator, SpanLimits()
                )
            self._pipeline_of = (provider, pipeline)
        return pipeline

    # --- per kind: the attributes known at the end, and metrics --------------------------

    def _finish_model(self, operation: Operation, elapsed: float, error_type: str | None) -> dict[str, Any]:
        series = self._model_series((str(operation.attributes.get("provider", "")), operation.name, error_type))
        details: dict[str, Any] = {}
        response = operation.output
        if isinstance(response, ModelResponse):
            usage = response.usage
            details[attr.GEN_AI_RESPONSE_MODEL] = valid_text(response.model or operation.name)
            details[attr.GEN_AI_RESPONSE_FINISH_REASONS] = (response.finish_reason,)
            details[attr.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            details[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            self._histograms.record(series, (elapsed, usage.input_tokens, usage.output_tokens))
            if self.capture_content:
                details[attr.GEN_AI_OUTPUT_MESSAGES] = _messages_json([response.message], self.max_content_length)
        else:
            self._histograms.record(series[:1], (elapsed,))
        if self.capture_content and isinstance(operation.input, ModelRequest):
            details[attr.GEN_AI_INPUT_MESSAGES] = _messages_json(operation.input.messages, self.max_content_length)
        return details

    def _model_series(self, key: tuple[str, str, str | None]) -> tuple[Series, Series, Series]:
        """The duration, input-token and output-token series of a model call, built once per key.

        Only what the GenAI metric conventions require (operation, provider, request model,
        token type, `error.type` on failure): every attribute is work for each measurement.
        """
        found = self._model_labels.get(key)
        if found is None:
            provider, model, error_type = valid_text(key[0]), valid_text(key[1]), key[2]
            tokens_in, tokens_out = attr.TOKEN_TYPE_INPUT, attr.TOKEN_TYPE_OUTPUT
            base: dict[str, Any] = {
                attr.GEN_AI_OPERATION_NAME: attr.OPERATION_CHAT,
                attr.GEN_AI_PROVIDER_NAME: provider,
                attr.GEN_AI_REQUEST_MODEL: model,
            }
            found = self._model_labels[key] = (
                (self._duration, key, base if error_type is None else {**base, attr.ERROR_TYPE: error_type}),
                (self._token_usage, (key, tokens_in), {**base, attr.GEN_AI_TOKEN_TYPE: tokens_in}),
                (self._token_usage, (key, tokens_out), {**base, attr.GEN_AI_TOKEN_TYPE: tokens_out}),
            )
        return found

    def _finish_tool(self, operation: Operation, elapsed: float, error_type: str | None) -> dict[str, Any]:
        name, status = operation.name, operation.status
        self._tool_calls[name, status] = self._tool_calls.get((name, status), 0) + 1
        if status == "error":
            failure = (name, error_type or "error")
            self._tool_failures[failure] = self._tool_failures.get(failure, 0) + 1
        if not self.capture_content:
            return {}
        call: ToolCall = operation.input
        cap = self.max_content_length
        details = {attr.GEN_AI_TOOL_CALL_ARGUMENTS: _content(call.arguments, cap)}
        if isinstance(operation.output, str):
            details[attr.GEN_AI_TOOL_CALL_RESULT] = _content(operation.output, cap)
        return details

    def _observe_tool_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {attr.GEN_AI_TOOL_NAME: valid_text(name), attr.GECKO_OPERATION_STATUS: status})
            for (name, status), count in self._tool_calls.copy().items()
        ]

    def _observe_tool_failures(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {attr.GEN_AI_TOOL_NAME: valid_text(name), attr.ERROR_TYPE: error_type})
            for (name, error_type), count in self._tool_failures.copy().items()
        ]

    def _finish_agent(self, operation: Operation, elapsed: float, error_type: str | None) -> dict[str, Any]:
        usage = getattr(operation.output, "usage", None)
        if usage is None:
            return {}
        return {
            attr.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
            attr.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
        }

    def _finish_workflow(self, operation: Operation, elapsed: float, error_type: str | None) -> dict[str, Any]:
        interrupted = operation.attributes.get("interrupted_node")
        return {} if interrupted is None else {attr.GECKO_WORKFLOW_INTERRUPTED_NODE: valid_text(str(interrupted))}

    def _finish_node(self, operation: Operation, elapsed: float, error_type: str | None) -> dict[str, Any]:
        key = (str(operation.attributes.get("workflow", "")), operation.name, operation.status)
        labels = {
            attr.GECKO_WORKFLOW_NAME: valid_text(key[0]),
            attr.GECKO_WORKFLOW_NODE: valid_text(key[1]),
            attr.GECKO_OPERATION_STATUS: key[2],
        }
        self._histograms.record(((self._node_duration, key, labels),), (elapsed,))
        return {}

    def _finish_team(self, operation: Operation, elapsed: float, error_type: str | None) -> dict[str, Any]:
        return {}

    def _finish_generic(self, operation: Operation, elapsed: float, error_type: str | None) -> dict[str, Any]:
        # Attributes the operation gained while it ran (counts, ids) join those it started with.
        return _generic_attributes(operation)

    # --- contexts ------------------------------------------------------------------------

    def span_context_of(self, operation: Operation) -> SpanContext | None:
        """The span context of an operation still running, or None."""
        opened = self._open.get(operation.id)
        return None if opened is None else opened.context


_Finisher = Callable[[OtelPlugin, Operation, float, "str | None"], dict[str, Any]]
_FINISHERS: dict[str, _Finisher] = {
    "model.call": OtelPlugin._finish_model,
    "tool.call": OtelPlugin._finish_tool,
    "agent.run": OtelPlugin._finish_agent,
    "workflow.run": OtelPlugin._finish_workflow,
    "workflow.node": OtelPlugin._finish_node,
    "team.run": OtelPlugin._finish_team,
    "team.member": OtelPlugin._finish_team,
}


def _describe(operation: Operation) -> tuple[str, SpanKind, dict[str, Any]]:
    """Span name, kind and start attributes of an operation (a new dict each time)."""
    kind: str = operation.kind  # any string: kinds added after this plugin get generic spans
    name, details = valid_text(operation.name), operation.attributes
    if kind == "model.call":
        attributes: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_CHAT,
            attr.GEN_AI_PROVIDER_NAME: _detail(details, "provider"),
            attr.GEN_AI_REQUEST_MODEL: name,
        }
        return (f"{attr.OPERATION_CHAT} {name}" if name else attr.OPERATION_CHAT), SpanKind.CLIENT, attributes
    if kind == "tool.call":
        call: ToolCall = operation.input
        attributes = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: name,
            attr.GEN_AI_TOOL_CALL_ID: call.id,
            attr.GEN_AI_TOOL_TYPE: "function",
        }
        return f"{attr.OPERATION_EXECUTE_TOOL} {name}", SpanKind.INTERNAL, attributes
    if kind == "agent.run":
        attributes = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_INVOKE_AGENT,
            attr.GEN_AI_AGENT_NAME: name,
            attr.GECKO_AGENT_RUN_ID: str(details.get("run_id", "")),
        }
        return f"{attr.OPERATION_INVOKE_AGENT} {name}", SpanKind.INTERNAL, attributes
    if kind == "workflow.run":
        attributes = {
            attr.GECKO_WORKFLOW_NAME: name,
            attr.GECKO_WORKFLOW_SESSION_ID: _detail(details, "session_id"),
            attr.GECKO_WORKFLOW_RUN_ID: str(details.get("run_id", "")),
            attr.GECKO_WORKFLOW_RESUMED: bool(details.get("resumed", False)),
        }
        return f"workflow {name}", SpanKind.INTERNAL, attributes
    if kind == "workflow.node":
        attributes = {attr.GECKO_WORKFLOW_NAME: _detail(details, "workflow"), attr.GECKO_WORKFLOW_NODE: name}
        return f"node {name}", SpanKind.INTERNAL, attributes
    if kind == "team.run":
        attributes = {attr.GECKO_TEAM_NAME: name, attr.GECKO_TEAM_STRATEGY: _detail(details, "strategy")}
        return f"team {name}", SpanKind.INTERNAL, attributes
    if kind == "team.member":
        attributes = {attr.GECKO_TEAM_MEMBER_INDEX: int(details.get("member_index", -1))}
        return f"member {name}", SpanKind.INTERNAL, attributes
    return (f"{kind} {name}" if name else kind), SpanKind.INTERNAL, _generic_attributes(operation)


def _detail(details: Mapping[str, Any], key: str) -> str:
    """An operation's attribute `key` as text an exporter can encode."""
    return valid_text(str(details.get(key, "")))


def _valid_value(value: Any) -> Any:
    """A scalar or sequence attribute value with its text made valid, sequences as tuples."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, _SCALARS):
        return value
    return tuple(valid_text(item) if isinstance(item, str) else item for item in value)


def _generic_attributes(operation: Operation) -> dict[str, Any]:
    """`gecko.operation.kind` and each scalar attribute of an operation of another kind as `gecko.<kind>.<key>`.

    Values other than str, bool, int, float (or sequences of one of them) are left out: an
    operation's content belongs in its input and output, which are not recorded.
    """
    kind: str = operation.kind
    found: dict[str, Any] = {attr.GECKO_OPERATION_KIND: kind}
    for key, value in operation.attributes.items():
        if _is_attribute_value(value):
            found[f"gecko.{kind}.{key}"] = _valid_value(value)
    return found


_SCALARS = (str, bool, int, float)


def _is_attribute_value(value: object) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        return False
    types = {type(item) for item in value}
    return len(types) == 1 and issubclass(types.pop(), _SCALARS)


def _error_type(operation: Operation) -> str | None:
    if operation.status == "cancelled":
        return "cancelled"
    error = operation.error
    if error is None:
        return None
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


# Captured content is redacted this many characters past where it is cut, so a secret that starts before the cut
# is still recognised (the core's patterns need far fewer; a PEM block cut inside is recognised as such).
_REDACTION_MARGIN = 1024


def _content_length(configured: int | None) -> int:
    """The content cap: `configured`, else the `GECKO_OTEL_MAX_CONTENT_LENGTH` variable, else the default."""
    where = "max_content_length"
    value: object = configured
    if configured is None:
        found = os.environ.get(attr.MAX_CONTENT_LENGTH_VARIABLE, "").strip()
        if not found:
            return attr.DEFAULT_MAX_CONTENT_LENGTH
        where = attr.MAX_CONTENT_LENGTH_VARIABLE
        try:
            value = int(found)
        except ValueError:  # not a number, or past Python's digit limit for int()
            value = found
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{where} must be a positive number of characters, got {value!r:.60}; "
            f"the default is {attr.DEFAULT_MAX_CONTENT_LENGTH}"
        )
    return value


def _cut(text: str, cap: int, cut: bool) -> str:
    """`text`, or its first `cap` characters marked as truncated when it is longer or was `cut` already."""
    if not cut and len(text) <= cap:
        return text
    return f"{text[:cap]} [... truncated to {cap} characters]"


def _content(text: str, cap: int) -> str:
    """Captured `text` as a span attribute: redacted, within `cap` characters (and the mark), valid text.

    Only what can be kept is redacted (a margin past the cut), so a 50 MB tool result costs no more than a short one.
    """
    seen = cap + _REDACTION_MARGIN
    return valid_text(_cut(redact(text[:seen]), cap, len(text) > seen))


def _messages_json(messages: list[Message], cap: int) -> str:
    """The messages as JSON, redacted with the core's secret patterns, within `cap` characters (and the mark).

    Only the text that can be kept is rendered: the messages' text up to a margin past `cap` characters.
    """
    rendered = []
    room = cap + _REDACTION_MARGIN
    cut = False
    for message in messages:
        if room <= 0:
            cut = True
            break
        text = message.text or ""
        item: dict[str, Any] = {"role": message.role.value, "content": redact(text[:room])}
        room -= len(text)
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                calls.append({"id": call.id, "name": call.name, "arguments": redact(call.arguments[: max(room, 0)])})
                room -= len(call.arguments)
            item["tool_calls"] = calls
        rendered.append(item)
    return valid_text(_cut(json.dumps(rendered, ensure_ascii=False), cap, cut or room < 0))


# --- logs ------------------------------------------------------------------------------------

_log_lock = threading.Lock()
_log_plugins: list[OtelPlugin] = []


def _install_log_correlation(plugin: OtelPlugin) -> None:
    """Give every log record the trace and span id of the Gecko operation (or span) it is logged in."""
    with _log_lock:
        first = not _log_plugins
        _log_plugins.append(plugin)
        if not first:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            context = _active_span_context()
            # Outside any span the fields are "0" (as OpenTelemetry's logging instrumentation
            # sets them), so a format string naming them works for every record.
            if context is None:
                trace_id, span_id, sampled = "0", "0", False
            else:
                trace_id = format(context.trace_id, "032x")
                span_id, sampled = format(context.span_id, "016x"), context.trace_flags.sampled
            setattr(record, attr.LOG_TRACE_ID, trace_id)
            setattr(record, attr.LOG_SPAN_ID, span_id)
            setattr(record, attr.LOG_TRACE_SAMPLED, sampled)
            return record

        logging.setLogRecordFactory(factory)


def _active_span_context() -> trace.SpanContext | None:
    operation = current_operation()
    if operation is not None:
        for plugin in _log_plugins:
            found = plugin.span_context_of(operation)
            if found is not None:
                return found
    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None


plugin = OtelPlugin()
"""The instance the `otel` entry point registers, reporting to the global providers."""
