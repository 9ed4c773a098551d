"""`import gecko` stays light: no plugin, no entry-point scan, no heavy SDK.

What an agent user writes, `from gecko import Agent, Workflow, Team, tool`, stays light too: no
provider SDK, no event-loop backend, no entry-point scan (pydantic scans for its plugins when it
builds the first validator), no pydantic model class and no asyncio: the engines and the pydantic
types behind them load when the first agent, tool, workflow run or team run needs them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("litellm", "chromadb", "lancedb", "redis", "opentelemetry.sdk", "pluggy")
USER_IMPORT = "from gecko import Agent, Workflow, Team, tool"
NOT_UNTIL_USED = (
    "litellm",
    "httpx",
    "openai",
    "opentelemetry",
    "chromadb",
    "lancedb",
    "redis",
    "sqlite3",
    "anyio._backends",
    "trio",
)
# What the user import leaves to first use: pydantic's model machinery (`BaseModel` alone costs
# more than `import pydantic`), every module defining pydantic models, and asyncio (with ssl).
MODELS_AND_EVENT_LOOP = (
    "pydantic.main",
    "gecko.types",
    "gecko.plugins.models",
    "gecko.core.state",
    "gecko.core._stored",
    "gecko.core.engine",
    "gecko.core.events",
    "gecko.compose._engine",
    "gecko.compose._checkpoint",
    "asyncio",
    "ssl",
)

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
modules = sorted(sys.modules)
from pydantic import BaseModel
built = sorted(
    f"{{name}}.{{value.__name__}}"
    for name, module in list(sys.modules.items()) if name.startswith("gecko")
    for value in vars(module).values()
    if isinstance(value, type) and issubclass(value, BaseModel) and value.__pydantic_complete__
)
print(json.dumps({{"modules": modules, "scans": scans, "built": built}}))
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


def test_the_user_import_loads_no_pydantic_model_and_no_event_loop(user_import: dict[str, list[str]]) -> None:
    assert [m for m in user_import["modules"] if m in MODELS_AND_EVENT_LOOP] == []


def test_building_an_agent_loads_what_the_import_left_out() -> None:
    build = (
        "from gecko.testing.models import ScriptedModel",
        "add = tool(name='add')(lambda a, b: a + b)",
        "Agent(ScriptedModel(['hi']), tools=[add])",
    )
    probe = _probe("\n".join((USER_IMPORT, *build)))
    assert {"pydantic.main", "gecko.types", "gecko.core.engine"} <= set(probe["modules"])


def test_the_state_types_are_still_exported_by_the_agent_module() -> None:
    from gecko.core import agent, state

    assert (agent.PausedOutput, agent.PendingApproval, agent.UsageLimits) == (
        state.PausedOutput,
        state.PendingApproval,
        state.UsageLimits,
    )
    with pytest.raises(AttributeError, match="no attribute 'Missing'"):
        agent.Missing  # noqa: B018 - the module's lazy attribute hook must refuse unknown names


def test_the_user_import_builds_no_pydantic_validator(user_import: dict[str, list[str]]) -> None:
    assert "gecko.types.Message" not in user_import["built"]
    assert user_import["built"] == []


def test_a_deferred_model_builds_on_first_use() -> None:
    probe = _probe(USER_IMPORT + "; from gecko.types import Message; Message.user('hi')")
    assert "gecko.types.Message" in probe["built"]
