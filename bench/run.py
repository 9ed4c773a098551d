"""Benchmark Gecko against its peers: ``python bench/run.py [--quick] [--only W1,W4] [--json out.json]``.

Each (workload, row) pair runs in a fresh ``bench/worker.py`` process: one warm-up, then the timed
repetitions. A row is a framework, or an extra variant of one (a second floor, a lower-level Gecko
path). The table gives the median (min..max) per row, the work that row did (counted, not assumed)
and, on each other row, Gecko's median divided by that row's (below 1: Gecko is faster or smaller).
Exits 1 if any measurement failed; a side not implemented yet ("n/a") or a capability a framework
lacks ("—") is not a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
FRAMEWORKS = ("gecko", "floor", "langgraph", "pydantic_ai", "openai_agents")
DISTRIBUTIONS = (
    "gecko-ai-core",
    "langgraph",
    "langchain-core",
    "langgraph-checkpoint-sqlite",
    "pydantic-ai-slim",
    "pydantic-graph",
    "openai-agents",
    "pydantic",
)
QUIET_ENV = {
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "DO_NOT_TRACK": "1",
}


@dataclass(frozen=True)
class Extra:
    """An extra row of a workload: ``framework``'s setup function ``function``, shown as ``name``."""

    name: str
    framework: str
    function: str


@dataclass(frozen=True)
class Workload:
    """One row group of the table: a setup function, its arguments and how to report it."""

    id: str
    label: str
    function: str
    args: tuple[float | str, ...]
    unit: str
    per: float = 1.0
    """Seconds are divided by this, then scaled to ``unit``."""
    clock: str = "wall"
    fresh_db: bool = False
    extras: tuple[Extra, ...] = ()


@dataclass
class Result:
    """One row's measurement of one workload, in the workload's unit."""

    workload: Workload
    framework: str
    status: str
    reason: str = ""
    values: list[float] = field(default_factory=list)
    work: dict[str, int] = field(default_factory=dict)
    rss_mb: float | None = None
    db_kb: float | None = None
    rows_kept: int | None = None
    importtime_ms: float | None = None

    @property
    def median(self) -> float:
        """The median of the timed repetitions."""
        return statistics.median(self.values)

    def as_json(self) -> dict[str, Any]:
        """Return this result as a JSON-ready dict."""
        return {
            "workload": self.workload.id,
            "label": self.workload.label,
            "unit": self.workload.unit,
            "framework": self.framework,
            "status": self.status,
            "reason": self.reason,
            "values": self.values,
            "median": self.median if self.values else None,
            "work": self.work,
            "peak_rss_mb": self.rss_mb,
            "db_kb": self.db_kb,
            "rows_kept": self.rows_kept,
            "importtime_ms": self.importtime_ms,
        }


def workloads(quick: bool) -> list[Workload]:
    """Return the workloads of BENCHMARKS.md, at smaller sizes when ``quick``."""
    chains = (100, 1000) if quick else (100, 1000, 10_000)
    agent_runs = 100 if quick else 1000
    replies = 1000 if quick else 10_000
    bare_chain = (Extra("floor: awaited chain", "floor", "w1_bare_chain"),)
    return [
        *(Workload("W1", f"W1 chain n={n}", "w1_chain", (n,), "µs/node", per=n, extras=bare_chain) for n in chains),
        Workload("W2a", "W2a fan-out 100 no-op", "w2a_fanout", (100,), "µs/node", per=100),
        Workload("W2b", "W2b fan-out 100 x 10 ms", "w2b_fanout_sleep", (100, 0.010), "ms"),
        *(
            Workload(
                "W3",
                f"W3 chain 100, durable steps, {synchronous}",
                "w3_checkpoint",
                (100, synchronous),
                "CPU µs/step",
                per=100,
                clock="cpu",
                fresh_db=True,
                extras=(Extra("gecko: statements=loop", "gecko", "w3_checkpoint_statements_on_loop"),)
                if synchronous == "NORMAL"
                else (),
            )
            for synchronous in ("NORMAL", "FULL")
        ),
        Workload("W4", f"W4 agent x{agent_runs} seq", "w4_agent", (agent_runs,), "µs/run", per=agent_runs),
        Workload("W5", "W5 200 agents, 50 ms model", "w5_agents", (200, 0.050), "ms"),
        Workload(
            "W6",
            "W6 what a user imports",
            "import:IMPORT_STATEMENT",
            (),
            "ms",
            extras=(Extra("floor: from pydantic import BaseModel", "floor", "import:IMPORT_BASE_MODEL"),),
        ),
        Workload(
            "W7",
            f"W7 structured x{replies}",
            "w7_structured",
            (replies,),
            "µs/reply",
            per=replies,
            extras=(Extra("gecko: bare StructureEngine", "gecko", "w7_structure_engine"),),
        ),
        Workload("W8", "W8 uneven DAG 600 | 5x120", "w8_uneven", (0.600, 0.120, 5), "ms"),
    ]


def _scale(unit: str) -> float:
    return 1e3 if unit.endswith("ms") else 1e6


def rows(workload: Workload, frameworks: list[str]) -> list[Extra]:
    """Return the rows of ``workload`` for ``frameworks``: one per framework, each followed by its extras."""
    found = []
    for framework in frameworks:
        found.append(Extra(framework, framework, workload.function))
        found.extend(extra for extra in workload.extras if extra.framework == framework)
    return found


def measure(workload: Workload, row: Extra, reps: int, timeout: float) -> Result:
    """Run ``row`` of ``workload`` in a fresh worker process and convert its samples."""
    framework = row.name
    spec = {
        "side": f"{row.framework}_side",
        "function": row.function,
        "args": list(workload.args),
        "reps": reps,
        "clock": workload.clock,
        "fresh_db": workload.fresh_db,
    }
    with tempfile.TemporaryDirectory(prefix="gecko-bench-") as tmp:
        out = Path(tmp) / "result.json"
        try:
            proc = subprocess.run(
                [sys.executable, str(BENCH / "worker.py"), json.dumps(spec), str(out)],
                check=False,
                env={**os.environ, **QUIET_ENV},
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return Result(workload, framework, "error", f"timed out after {timeout:.0f} s")
        if not out.exists():
            tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            return Result(workload, framework, "error", f"worker died: {tail}")
        raw = json.loads(out.read_text())
    if raw["status"] != "ok":
        return Result(workload, framework, raw["status"], raw["reason"])
    scale = _scale(workload.unit) / workload.per
    db_bytes = raw.get("db_bytes")
    rows_kept = raw.get("rows_kept")
    importtime = raw.get("importtime_s")
    return Result(
        workload,
        framework,
        "ok",
        values=[s * scale for s in raw["samples"]],
        work=raw.get("work", {}),
        rss_mb=raw["rss_kb"] / 1024 if workload.id == "W5" else None,
        db_kb=statistics.median(db_bytes) / 1024 if db_bytes else None,
        rows_kept=int(statistics.median(rows_kept)) if rows_kept else None,
        importtime_ms=importtime * 1e3 if importtime is not None else None,
    )


def _number(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _figure(result: Result) -> str:
    if result.status == "ok":
        extra = ""
        if result.rss_mb is not None:
            extra = f", {result.rss_mb:,.0f} MB"
        if result.db_kb is not None:
            extra = f", {result.db_kb:,.0f} KB"
        if result.importtime_ms is not None:
            extra = f", importtime {_number(result.importtime_ms)}"
        spread = f"({_number(min(result.values))}..{_number(max(result.values))})"
        return f"{_number(result.median)} {spread}{extra}"
    return {"n/a": "n/a", "unsupported": "—"}.get(result.status, "ERROR")


def _work(result: Result) -> str:
    """The counted work of one repetition, e.g. ``100 nodes, 101 sqlite commits``."""
    parts = [f"{count:,} {kind}" for kind, count in result.work.items()]
    if result.rows_kept is not None:
        parts.append(f"{result.rows_kept:,} rows kept")
    return ", ".join(parts)


def _ratio(gecko: Result | None, peer: Result) -> str:
    if peer.framework == "gecko" or peer.status != "ok":
        return ""
    if gecko is None or gecko.status != "ok":
        return "n/a"
    text = f"{gecko.median / peer.median:.3g}x"
    if gecko.rss_mb is not None and peer.rss_mb is not None:
        text += f" (RSS {gecko.rss_mb / peer.rss_mb:.2g}x)"
    if gecko.db_kb is not None and peer.db_kb is not None:
        text += f" (DB {gecko.db_kb / peer.db_kb:.2g}x)"
    return text


def print_table(results: list[Result]) -> None:
    """Print one block per workload: each framework's figure and Gecko's ratio to it."""
    header = ("workload", "unit", "framework", "median (min..max)", "gecko/this", "work per repetition")
    lines: list[tuple[str, ...]] = [header]
    labels = list(dict.fromkeys(r.workload.label for r in results))
    for label in labels:
        group = [r for r in results if r.workload.label == label]
        gecko = next((r for r in group if r.framework == "gecko"), None)
        for i, result in enumerate(group):
            first = i == 0
            lines.append(
                (
                    label if first else "",
                    result.workload.unit if first else "",
                    result.framework,
                    _figure(result),
                    _ratio(gecko, result),
                    _work(result),
                )
            )
    widths = [max(len(row[c]) for row in lines) for c in range(len(header))]
    for n, row in enumerate(lines):
        if n > 1 and row[0]:
            print()
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    notes = dict.fromkeys(f"{r.framework}: {r.status} — {r.reason}" for r in results if r.status != "ok")
    if notes:
        print("\nNot measured:")
        for note in notes:
            print(f"  {note}")


def _versions() -> dict[str, str]:
    found = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the chosen workloads on the chosen frameworks, print the table; return the exit code."""
    parser = argparse.ArgumentParser(description="Benchmark Gecko against its peers.")
    parser.add_argument("--quick", action="store_true", help="3 repetitions and smaller sizes (CI smoke)")
    parser.add_argument("--only", default="", help="comma-separated workload ids, e.g. W1,W4 (W2 = W2a+W2b)")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--reps", type=int, help="timed repetitions per row (default 5, 3 with --quick)")
    parser.add_argument("--timeout", type=float, help="seconds per row before it counts as ERROR (default 900)")
    args = parser.parse_args(argv)

    only = [o.strip().lower() for o in args.only.split(",") if o.strip()]
    chosen = [w for w in workloads(args.quick) if not only or any(w.id.lower().startswith(o) for o in only)]
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"unknown framework(s): {', '.join(sorted(unknown))}")
    if not chosen:
        parser.error(f"no workload matches {args.only!r}")
    reps, timeout = (3, 300.0) if args.quick else (5, 900.0)
    reps = args.reps or reps
    timeout = args.timeout or timeout

    versions = _versions()
    print("Python", sys.version.split()[0], "|", ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"{reps} timed repetitions after 1 warm-up, each framework in a fresh process\n")
    results: list[Result] = []
    for workload in chosen:
        for row in rows(workload, frameworks):
            result = measure(workload, row, reps, timeout)
            progress = f"  {workload.label:<36} {row.name:<28} {_figure(result)}  {_work(result)}"
            print(progress.rstrip(), file=sys.stderr, flush=True)
            results.append(result)
            if args.json:
                # Rewritten after every row, so an interrupted run keeps what it measured.
                _write_json(args.json, args.quick, reps, versions, results)
    print()
    print_table(results)
    return 1 if any(r.status == "error" for r in results) else 0


def _write_json(path: Path, quick: bool, reps: int, versions: dict[str, str], results: list[Result]) -> None:
    payload = {"quick": quick, "reps": reps, "versions": versions, "results": [r.as_json() for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
