"""What tracing costs: W4 and W5 with and without gecko-ai-telemetry-otel, beside peers with their tracing on.

``python bench/w12_telemetry.py [--quick] [--json out.json]``

Each row runs in a fresh process (`--row NAME` runs one row there). Rows with tracing install an
OpenTelemetry SDK `TracerProvider` whose `BatchSpanProcessor` (the production setting) exports
every span to an in-memory exporter (cleared between repetitions), and a `MeterProvider` with an
in-memory reader, so spans and metrics are really built and recorded; nothing leaves the process.
Each timed repetition ends with the spans flushed and the metrics collected (the plugin's histograms,
aggregated in plain Python, join the SDK's data at collection), so deferred work is in the time.
"gecko" runs with the `otel` entry point disabled (`GECKO_DISABLED_PLUGINS=otel`) and reports
whether any opentelemetry module was imported; "gecko+otel" with the installed plugin loaded
through its entry point. Pydantic AI rows use its `Agent.instrument_all(InstrumentationSettings(...))`
with content capture off, as Gecko's default; "openai-agents+tracing" runs the OpenAI Agents SDK
with its own tracing on, its processor keeping spans in memory (instead of sending them to OpenAI).
"otel-sdk floor" is no framework at all: per W4 run, the SDK work a traced run would need through
the SDK's API (4 spans with the plugin's attributes under one parent, the 3 histogram measurements
of each of the 2 model calls), on the same providers.
The workloads are bench/frameworks' W4 (sequential agent runs: a scripted model asks for
`add(2, 3)`, then answers) and W5 (200 such agents at once, the model awaiting 50 ms per call).
Reported: the median of the timed repetitions after one warm-up, per run (W4) or per workload (W5),
in wall time and in CPU time of the process (all threads: the batch processor's export thread counts).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROWS = ("gecko", "gecko+otel", "otel-sdk floor", "pydantic-ai", "pydantic-ai+otel", "openai-agents+tracing")


class _Telemetry:
    """The in-process sinks of a traced row: finished spans, and a metric reader collected per repetition."""

    def __init__(self, flush: Any, spans: Any, clear: Any, reader: Any = None) -> None:
        self.flush, self.spans, self.clear, self.reader = flush, spans, clear, reader

    def points(self) -> int:
        """Collect the metrics (part of the timed work) and count their data points."""
        if self.reader is None:
            return 0
        data = self.reader.get_metrics_data()
        if data is None:
            return 0
        return sum(
            len(metric.data.data_points)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        )


def _otel_telemetry(exporter: Any, tracer_provider: Any, reader: Any) -> _Telemetry:
    return _Telemetry(tracer_provider.force_flush, exporter.get_finished_spans, exporter.clear, reader)


def _openai_agents_telemetry() -> _Telemetry:
    """OpenAI Agents tracing on, into a processor that keeps finished spans and traces in memory."""
    from agents import set_trace_processors, set_tracing_disabled
    from agents.tracing import TracingProcessor

    finished: list[Any] = []

    class InMemory(TracingProcessor):
        def on_trace_start(self, trace: Any) -> None:
            return None

        def on_trace_end(self, trace: Any) -> None:
            finished.append(trace.export())

        def on_span_start(self, span: Any) -> None:
            return None

        def on_span_end(self, span: Any) -> None:
            finished.append(span.export())

        def shutdown(self) -> None:
            return None

        def force_flush(self) -> None:
            return None

    set_trace_processors([InMemory()])
    set_tracing_disabled(False)
    return _Telemetry(lambda: None, lambda: finished, finished.clear)


def _sdk() -> tuple[Any, Any, Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return exporter, tracer_provider, MeterProvider(metric_readers=[reader]), reader


def _sdk_floor(tracer_provider: Any, meter_provider: Any, runs: int) -> Any:
    """W4's least SDK work, `runs` times: an agent span, two chat spans and a tool span, six measurements."""
    from opentelemetry import trace

    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    tokens, duration = meter.create_histogram("gen_ai.client.token.usage"), meter.create_histogram("duration")
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "function", "gen_ai.request.model": "m"}
    tokens_in, tokens_out = {**chat, "gen_ai.token.type": "input"}, {**chat, "gen_ai.token.type": "output"}

    async def run() -> None:
        for _ in range(runs):
            agent = tracer.start_span(
                "invoke_agent agent",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "a",
                    "gecko.agent.run_id": "r",
                },
            )
            parent = trace.set_span_in_context(agent)
            for span_name in ("chat m", "execute_tool add", "chat m"):
                if span_name == "execute_tool add":
                    attributes: dict[str, Any] = {
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add",
                        "gen_ai.tool.call.id": "call_1", "gen_ai.tool.type": "function",
                    }  # fmt: skip
                else:
                    attributes = {
                        **chat, "gen_ai.response.model": "m", "gen_ai.response.finish_reasons": ("stop",),
                        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
                    }  # fmt: skip
                    tokens.record(10, tokens_in)
                    tokens.record(5, tokens_out)
                    duration.record(0.001, chat)
                tracer.start_span(span_name, parent, attributes=attributes).end()
            agent.set_attributes({"gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 10})
            agent.end()

    return run


async def _row(row: str, w4_runs: int, w5_agents: int, reps: int) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH))
    exporter = tracer_provider = None
    telemetry = None
    if row == "otel-sdk floor":
        exporter, tracer_provider, meter_provider, reader = _sdk()
        workloads = [("W4", _sdk_floor(tracer_provider, meter_provider, w4_runs), w4_runs)]
        return await _measure(workloads, _otel_telemetry(exporter, tracer_provider, reader), reps)
    if row.startswith("gecko"):
        from frameworks import gecko_side as side
    elif row.startswith("openai-agents"):
        from frameworks import openai_agents_side as side  # type: ignore[no-redef]

        telemetry = _openai_agents_telemetry()
    else:
        from frameworks import pydantic_ai_side as side  # type: ignore[no-redef]
    if row == "gecko+otel":
        from opentelemetry import metrics, trace

        exporter, tracer_provider, meter_provider, reader = _sdk()
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        from gecko.plugins import load_plugins

        loaded = {record.name: record.status for record in load_plugins()}
        if loaded.get("otel") != "loaded":
            raise SystemExit(f"gecko-ai-telemetry-otel is not installed or failed to load: {loaded}")
        telemetry = _otel_telemetry(exporter, tracer_provider, reader)
    elif row == "pydantic-ai+otel":
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings

        exporter, tracer_provider, meter_provider, reader = _sdk()
        Agent.instrument_all(
            InstrumentationSettings(
                tracer_provider=tracer_provider, meter_provider=meter_provider, include_content=False
            )
        )
        telemetry = _otel_telemetry(exporter, tracer_provider, reader)
    workloads = [
        ("W4", await side.w4_agent(w4_runs), w4_runs),
        ("W5", await side.w5_agents(w5_agents, 0.050), 1),
    ]
    return await _measure(workloads, telemetry, reps)


async def _measure(workloads: list[tuple[str, Any, int]], telemetry: _Telemetry | None, reps: int) -> dict[str, Any]:
    """Median wall and CPU time per unit of each workload; the spans and metric points of its last repetition."""
    results: dict[str, Any] = {}
    for name, runner, per in workloads:
        await runner()  # warm-up
        walls, cpus = [], []
        points = 0
        for _ in range(reps):
            if telemetry is not None:
                telemetry.flush()  # spans batched by the previous repetition land first
                telemetry.clear()
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            await runner()
            if telemetry is not None:
                telemetry.flush()  # the export is part of the cost
                points = telemetry.points()  # and so is the metric collection
            walls.append((time.perf_counter() - start) / per)
            cpus.append((time.process_time() - start_cpu) / per)
        results[name], results[f"{name}_cpu"] = statistics.median(walls), statistics.median(cpus)
        results[f"{name}_spans"] = 0 if telemetry is None else len(telemetry.spans())
        results[f"{name}_points"] = points
    results["opentelemetry_imported"] = any(module.split(".")[0] == "opentelemetry" for module in sys.modules)
    return results


def _spawn(row: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ}
    if row == "gecko":
        env["GECKO_DISABLED_PLUGINS"] = "otel"
    command = [sys.executable, __file__, "--row", row, "--w4-runs", str(args.w4_runs), "--reps", str(args.reps)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": reason}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="W4 x100, 3 repetitions")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--w4-runs", type=int, default=500, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(asyncio.run(_row(args.row, args.w4_runs, 200, args.reps))))
        return
    if args.quick:
        args.w4_runs, args.reps = 100, 3
    rows = {}
    for row in ROWS:
        print(f"running {row} ...", file=sys.stderr)
        rows[row] = _spawn(row, args)
    header = ("W4 µs/run", "W4 CPU µs", "W5 ms", "W5 CPU ms", "W4 spans", "W4 points", "otel imported")
    print(f"{'':<22}" + "".join(f"{title:>14}" for title in header))
    for row, result in rows.items():
        if "error" in result:
            print(f"{row:<22}  n/a: {result['error']}")
            continue
        w5 = (f"{result['W5'] * 1e3:>14.1f}{result['W5_cpu'] * 1e3:>14.1f}") if "W5" in result else f"{'—':>14}" * 2
        print(
            f"{row:<22}{result['W4'] * 1e6:>14.1f}{result['W4_cpu'] * 1e6:>14.1f}{w5}"
            f"{result['W4_spans']:>14}{result['W4_points']:>14}{result['opentelemetry_imported']!s:>14}"
        )
    base, traced, floor = rows["gecko"], rows["gecko+otel"], rows["otel-sdk floor"]
    if "error" not in base and "error" not in traced:
        for clock, key in (("wall", "W4"), ("CPU", "W4_cpu")):
            print(f"\nW4 gecko+otel / gecko = {traced[key] / base[key]:.2f}x {clock} (target <= 2x)", end="")
            if "error" not in floor:
                added = traced[key] - base[key]
                print(f"; added {added * 1e6:.0f} µs/run = {added / floor[key]:.2f}x the SDK floor", end="")
        w5_wall, w5_cpu = traced["W5"] / base["W5"], traced["W5_cpu"] / base["W5_cpu"]
        print(f"\nW5 gecko+otel / gecko = {w5_wall:.2f}x wall, {w5_cpu:.2f}x CPU")
        for name in ("pydantic-ai+otel", "openai-agents+tracing"):
            peer = rows[name]
            if "error" not in peer:
                print(
                    f"W4 {name} / gecko+otel = {peer['W4'] / traced['W4']:.1f}x wall, "
                    f"{peer['W4_cpu'] / traced['W4_cpu']:.1f}x CPU (target >= 10x)"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
