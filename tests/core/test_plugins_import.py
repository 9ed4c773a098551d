"""`import gecko` stays light: no plugin, no entry-point scan, no heavy SDK."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("litellm", "chromadb", "lancedb", "redis", "opentelemetry.sdk", "pluggy")

_PROBE = """
import importlib.metadata, json, sys
scans = []
original = importlib.metadata.entry_points
def counting(*args, **kwargs):
    scans.append(1)
    return original(*args, **kwargs)
importlib.metadata.entry_points = counting
import gecko
gecko.__version__
print(json.dumps({"modules": sorted(sys.modules), "scans": len(scans)}))
"""


def _probe() -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60)
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_import_gecko_scans_no_entry_points() -> None:
    assert _probe()["scans"] == 0


def test_import_gecko_imports_no_plugin_module() -> None:
    modules = _probe()["modules"]
    assert isinstance(modules, list)
    assert [m for m in modules if m.startswith(("gecko_", "gecko.plugins"))] == []


def test_import_gecko_imports_no_heavy_dependency() -> None:
    modules = _probe()["modules"]
    assert isinstance(modules, list)
    assert [m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY[:4]] == []
