"""Runs one workload on one framework in this (fresh) process; ``bench/run.py`` starts it.

Usage: ``python bench/worker.py SPEC_JSON OUT_JSON``. SPEC_JSON holds ``side`` (a module of
``frameworks``), ``function`` (a setup function, or ``"import_time"`` for W6), ``args``, ``reps``,
``clock`` (``"wall"`` or ``"cpu"``) and ``fresh_db`` (W3: a new SQLite file per repetition). The
worker writes OUT_JSON: ``status`` (``ok``, ``n/a``, ``unsupported`` or ``error``), ``samples`` (seconds
per timed repetition, after one warm-up), ``rss_kb`` (peak RSS of this process), ``db_bytes`` (W3),
and ``reason`` when not ok.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from frameworks import Runner, UnsupportedError


def _cumulative_import_us(stderr: str, module: str) -> int:
    """Return the cumulative µs of ``module``'s top-level ``-X importtime`` row (parents nest inside it)."""
    for line in stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[2] == f" {module}":
            return int(fields[1])
    raise ValueError(f"no top-level importtime row for {module}")


def _import_times(module: str, reps: int) -> list[float]:
    """Time ``import module`` in ``reps`` fresh interpreters after one warm-up (bytecode caching)."""
    samples = []
    for _ in range(reps + 1):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            check=False,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            if "ModuleNotFoundError" in proc.stderr:
                raise ModuleNotFoundError(f"No module named {module!r}", name=module)
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
        samples.append(_cumulative_import_us(proc.stderr, module) / 1e6)
    return samples[1:]


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
            samples.append((await _timed(runner, spec["clock"]))[0])
        return {"samples": samples}
    db_bytes: list[int] = []
    for rep in range(spec["reps"] + 1):
        with tempfile.TemporaryDirectory(prefix="gecko-bench-") as tmp:
            runner = await setup(*spec["args"], Path(tmp) / "bench.db")
            elapsed, db = await _timed(runner, spec["clock"])
            assert isinstance(db, Path)
            size = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
        if rep:
            samples.append(elapsed)
            db_bytes.append(size)
    return {"samples": samples, "db_bytes": db_bytes}


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        side = importlib.import_module(f"frameworks.{spec['side']}")
        if spec["function"] == "import_time":
            result = {"samples": _import_times(side.IMPORT_MODULE, spec["reps"])}
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
