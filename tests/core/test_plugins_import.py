"""`import gecko` stays light: no plugin, no entry-point scan, no heavy SDK.

What an agent user writes, `from gecko import Agent, Workflow, Team, tool`, stays light too: no
provider SDK, no event-loop backend, no entry-point scan (pydantic scans for its plugins when it
builds the first validator), and no pydantic validator built until a model is first used.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("litellm", "chromadb", "lancedb", "redis", "opentelemetry.sdk", "pluggy")
USER_IMPORT = "from gecko import Agent, Workflow, Team, tool"
NOT_UNTIL_USED = ("litellm", "httpx", "openai", "chromadb", "lancedb", "redis", "sqlite3", "anyio._backends", "trio")

_PROBE = """
import importlib.metadata, json, sys
scans = []
def counting(original):
    def scan(*args, **kwargs):
        scans.append(original.__name__)
        return original(*args, **kwargs)
    return scan
importlib.metadata.entry_points = counting(importlib.metadata.entry_points)
importlib.metadata.distributions = counting(importlib.metadata.distributions)
{statement}
from pydantic import BaseModel
built = sorted(
    f"{{name}}.{{value.__name__}}"
    for name, module in list(sys.modules.items()) if name.startswith("gecko")
    for value in vars(module).values()
    if isinstance(value, type) and issubclass(value, BaseModel) and value.__pydantic_complete__
)
print(json.dumps({{"modules": sorted(sys.modules), "scans": scans, "built": built}}))
"""


def _probe(statement: str = "import gecko; gecko.__version__") -> dict[str, list[str]]:
    code = _PROBE.format(statement=statement)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded: dict[str, list[str]] = json.loads(result.stdout)
    return loaded


def test_import_gecko_scans_no_entry_points() -> None:
    assert _probe()["scans"] == []


def test_import_gecko_imports_no_plugin_module() -> None:
    modules = _probe()["modules"]
    assert [m for m in modules if m.startswith(("gecko_", "gecko.plugins"))] == []


def test_import_gecko_imports_no_heavy_dependency() -> None:
    modules = _probe()["modules"]
    assert [m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY[:4]] == []


@pytest.fixture(scope="module")
def user_import() -> dict[str, list[str]]:
    return _probe(USER_IMPORT)


def test_the_user_import_scans_no_entry_points(user_import: dict[str, list[str]]) -> None:
    assert user_import["scans"] == []


def test_the_user_import_loads_no_sdk_backend_or_driver(user_import: dict[str, list[str]]) -> None:
    loaded = [m for m in user_import["modules"] if m.startswith(NOT_UNTIL_USED)]
    assert loaded == []
    assert not [m for m in user_import["modules"] if m.startswith("gecko_")]


def test_the_user_import_builds_no_pydantic_validator(user_import: dict[str, list[str]]) -> None:
    assert "gecko.types.Message" not in user_import["built"]
    assert user_import["built"] == []


def test_a_deferred_model_builds_on_first_use() -> None:
    probe = _probe(USER_IMPORT + "; from gecko.types import Message; Message.user('hi')")
    assert "gecko.types.Message" in probe["built"]
