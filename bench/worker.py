"""Runs one workload on one framework in this (fresh) process; ``bench/run.py`` starts it.

Usage: ``python bench/worker.py SPEC_JSON OUT_JSON``. SPEC_JSON holds ``side`` (a module of
``frameworks``), ``function`` (a setup function, or for W6 ``"import:NAME"``, timing the statement in
the side's attribute ``NAME``), ``args``, ``reps``,
``clock`` (``"wall"`` or ``"cpu"``) and ``fresh_db`` (W3: a new SQLite file per repetition). The
worker writes OUT_JSON: ``status`` (``ok``, ``n/a``, ``unsupported`` or ``error``), ``samples`` (seconds
per timed repetition, after one warm-up), ``work`` (``frameworks.WORK`` of the last repetition; W3
adds the SQLite statements of the warm-up, W6 the modules loaded), ``rss_kb`` (peak RSS of this
process), ``db_bytes`` and ``rows_kept`` (W3), ``importtime_s`` (W6), and ``reason`` when not ok.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from frameworks import WORK, Runner, UnsupportedError

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_COUNT_MODULES = "import sys; _before = set(sys.modules)\n{statement}\nprint(len(set(sys.modules) - _before))"


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    # Bytecode caching on, as for an installed package: the warm-up run writes what the timed runs read.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        error = ModuleNotFoundError if "ModuleNotFoundError" in proc.stderr else RuntimeError
        raise error(proc.stderr.strip().splitlines()[-1])
    return proc


def _importtime_s(stderr: str) -> float:
    """Sum the cumulative column of the top-level ``-X importtime`` rows (nested rows are inside them)."""
    total = 0
    for line in stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[1].strip().isdigit() and not fields[2].startswith("  "):
            total += int(fields[1])
    return total / 1e6


def _import_times(statement: str, reps: int) -> dict[str, Any]:
    """Time ``statement`` in fresh interpreters: wall minus an empty interpreter, and ``-X importtime``.

    Each repetition starts ``python -c pass`` and ``python -c statement`` back to back, so load
    drifts hit both; the first (warm-up) pair fills the bytecode cache. ``-X importtime`` runs in
    separate processes (its bookkeeping slows the imports it reports) and is subtracted the same way.
    """
    samples, importtime = [], []
    for rep in range(reps + 1):
        start = time.perf_counter()
        _python("-c", "pass")
        empty = time.perf_counter() - start
        start = time.perf_counter()
        _python("-c", statement)
        wall = time.perf_counter() - start
        traced = _importtime_s(_python("-X", "importtime", "-c", statement).stderr)
        baseline = _importtime_s(_python("-X", "importtime", "-c", "pass").stderr)
        if rep:
            samples.append(wall - empty)
            importtime.append(traced - baseline)
    modules = int(_python("-c", _COUNT_MODULES.format(statement=statement)).stdout)
    return {"samples": samples, "importtime_s": statistics.median(importtime), "work": {"modules loaded": modules}}


@contextmanager
def _counting_sqlite(counts: Counter[str]) -> Iterator[None]:
    """Count, in ``counts``, the transactions committed and rows-writing statements of every new connection.

    ``sqlite3.connect`` is wrapped for the duration, so connections opened by any driver in this
    process (stdlib, aiosqlite, a worker thread) get a trace callback. A statement outside an
    explicit ``BEGIN`` is its own (autocommit) transaction.
    """
    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = original(*args, **kwargs)
        connection.set_trace_callback(_tracer(counts))
        return connection

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite3.connect = original


def _tracer(counts: Counter[str]) -> Callable[[str], None]:
    in_transaction = False

    def trace(statement: str) -> None:
        nonlocal in_transaction
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if verb == "BEGIN":
            in_transaction = True
        elif verb in ("COMMIT", "END"):
            in_transaction = False
            counts["sqlite commits"] += 1
        elif verb == "ROLLBACK":
            in_transaction = False
        elif verb in _WRITES:
            counts["sqlite row writes"] += 1
            if not in_transaction:
                counts["sqlite commits"] += 1

    return trace


def _rows_kept(db: Path) -> int:
    """Return the rows left in every table of ``db`` (what the framework retains after the run)."""
    with sqlite3.connect(db) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sum(connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables)


async def _timed(runner: Runner, clock: str) -> tuple[float, object]:
    gc.collect()
    now = time.process_time if clock == "cpu" else time.perf_counter
    start = now()
    result = await runner()
    return now() - start, result


async def _measure(side: Any, spec: dict[str, Any]) -> dict[str, Any]:
    setup = getattr(side, spec["function"])
    samples: list[float] = []
    if not spec["fresh_db"]:
        runner = await setup(*spec["args"])
        await runner()
        for _ in range(spec["reps"]):
            WORK.clear()
            samples.append((await _timed(runner, spec["clock"]))[0])
        return {"samples": samples, "work": dict(WORK)}
    db_bytes: list[int] = []
    rows_kept: list[int] = []
    statements: Counter[str] = Counter()
    for rep in range(spec["reps"] + 1):
        WORK.clear()
        with tempfile.TemporaryDirectory(prefix="gecko-bench-") as tmp:
            if rep:
                runner = await setup(*spec["args"], Path(tmp) / "bench.db")
                elapsed, db = await _timed(runner, spec["clock"])
            else:
                # The warm-up counts the statements; the timed repetitions run without the trace callback.
                with _counting_sqlite(statements):
                    runner = await setup(*spec["args"], Path(tmp) / "bench.db")
                    setup_counts = Counter(statements)
                    elapsed, db = await _timed(runner, spec["clock"])
                statements.subtract(setup_counts)
            assert isinstance(db, Path)
            size = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
            kept = _rows_kept(db)
        if rep:
            samples.append(elapsed)
            db_bytes.append(size)
            rows_kept.append(kept)
    work = {**WORK, **{k: v for k, v in statements.items() if v}}
    return {"samples": samples, "db_bytes": db_bytes, "rows_kept": rows_kept, "work": work}


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        side = importlib.import_module(f"frameworks.{spec['side']}")
        if spec["function"].startswith("import:"):
            result = _import_times(getattr(side, spec["function"].removeprefix("import:")), spec["reps"])
        else:
            result = asyncio.run(_measure(side, spec))
    except UnsupportedError as exc:
        return {"status": "unsupported", "reason": str(exc)}
    except NotImplementedError as exc:
        return {"status": "n/a", "reason": str(exc)}
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("gecko"):
            return {"status": "n/a", "reason": f"{exc.name} is not importable yet"}
        return {"status": "error", "reason": f"{exc} (install bench/requirements-peers.txt)"}

    except Exception as exc:
        # Any failure becomes this pair's ERROR row; it never stops the whole run.
        traceback.print_exc()
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"status": "ok", "rss_kb": rss_kb, **result}


def main() -> None:
    """Measure the spec given on the command line and write the result file."""
    spec = json.loads(sys.argv[1])
    Path(sys.argv[2]).write_text(json.dumps(_run(spec)))


if __name__ == "__main__":
    main()
