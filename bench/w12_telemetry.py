"""What tracing costs: W4 and W5 with and without gecko-ai-telemetry-otel, beside Pydantic AI instrumented.

``python bench/w12_telemetry.py [--quick] [--json out.json]``

Each row runs in a fresh process (`--row NAME` runs one row there). Rows with tracing install an
OpenTelemetry SDK `TracerProvider` whose `BatchSpanProcessor` (the production setting) exports
every span to an in-memory exporter (cleared between repetitions), and a `MeterProvider` with an
in-memory reader, so spans and metrics are really built and recorded; nothing leaves the process.
"gecko" runs with the `otel` entry point disabled (`GECKO_DISABLED_PLUGINS=otel`) and reports
whether any opentelemetry module was imported; "gecko+otel" with the installed plugin loaded
through its entry point. Pydantic AI rows use its `Agent.instrument_all(InstrumentationSettings(...))`
with content capture off, as Gecko's default.
The workloads are bench/frameworks' W4 (sequential agent runs: a scripted model asks for
`add(2, 3)`, then answers) and W5 (200 such agents at once, the model awaiting 50 ms per call).
Reported: the median of the timed repetitions after one warm-up, per run (W4) or per workload (W5).
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
ROWS = ("gecko", "gecko+otel", "pydantic-ai", "pydantic-ai+otel")


def _sdk() -> tuple[Any, Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return exporter, tracer_provider, meter_provider


async def _row(row: str, w4_runs: int, w5_agents: int, reps: int) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH))
    exporter = tracer_provider = None
    if row.startswith("gecko"):
        from frameworks import gecko_side as side
    else:
        from frameworks import pydantic_ai_side as side  # type: ignore[no-redef]
    if row == "gecko+otel":
        from opentelemetry import metrics, trace

        exporter, tracer_provider, meter_provider = _sdk()
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        from gecko.plugins import load_plugins

        loaded = {record.name: record.status for record in load_plugins()}
        if loaded.get("otel") != "loaded":
            raise SystemExit(f"gecko-ai-telemetry-otel is not installed or failed to load: {loaded}")
    elif row == "pydantic-ai+otel":
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings

        exporter, tracer_provider, meter_provider = _sdk()
        Agent.instrument_all(
            InstrumentationSettings(
                tracer_provider=tracer_provider, meter_provider=meter_provider, include_content=False
            )
        )
    results: dict[str, Any] = {}
    for name, runner, per in (
        ("W4", await side.w4_agent(w4_runs), w4_runs),
        ("W5", await side.w5_agents(w5_agents, 0.050), 1),
    ):
        await runner()  # warm-up
        samples = []
        for _ in range(reps):
            if exporter is not None:
                tracer_provider.force_flush()  # spans batched by the previous repetition land first
                exporter.clear()
            gc.collect()
            start = time.perf_counter()
            await runner()
            samples.append((time.perf_counter() - start) / per)
        results[name] = statistics.median(samples)
        if tracer_provider is not None:
            tracer_provider.force_flush()
        results[f"{name}_spans"] = 0 if exporter is None else len(exporter.get_finished_spans())
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
    print(f"{'':<18}{'W4 µs/run':>12}{'W5 ms':>10}{'spans/W4':>10}{'otel imported':>15}")
    for row, result in rows.items():
        if "error" in result:
            print(f"{row:<18}  n/a: {result['error']}")
            continue
        print(
            f"{row:<18}{result['W4'] * 1e6:>12.1f}{result['W5'] * 1e3:>10.1f}"
            f"{result['W4_spans']:>10}{result['opentelemetry_imported']!s:>15}"
        )
    base, traced = rows["gecko"], rows["gecko+otel"]
    if "error" not in base and "error" not in traced:
        print(f"\nW4 gecko+otel / gecko = {traced['W4'] / base['W4']:.2f}x (target <= 2x)")
        print(f"W5 gecko+otel / gecko = {traced['W5'] / base['W5']:.2f}x")
        peer = rows["pydantic-ai+otel"]
        if "error" not in peer:
            print(f"W4 pydantic-ai+otel / gecko+otel = {peer['W4'] / traced['W4']:.1f}x (target >= 10x)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
