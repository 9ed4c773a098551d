"""Durations and counts a user configures: anything but a positive number is a `ConfigurationError` up front."""

from __future__ import annotations

from typing import Any

import pytest

from gecko.compose.nodes import step
from gecko.compose.workflow import Workflow
from gecko.core.agent import Agent
from gecko.core.toolbox import ToolBox, tool
from gecko.errors import ConfigurationError
from gecko.plugins.models import RetryPolicy
from gecko.testing.models import ScriptedModel

NOT_SECONDS = [0, -1, -0.0, float("nan"), float("-inf"), "5", True, [1]]


def _echo(value: Any) -> Any:
    return value


@pytest.mark.parametrize("value", NOT_SECONDS)
def test_workflow_durations_that_are_not_positive_seconds_are_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a positive number of seconds"):
        Workflow("w", timeout=value)
    with pytest.raises(ConfigurationError, match="lease_ttl must be a positive number of seconds"):
        Workflow("w", lease_ttl=value)
    with pytest.raises(ConfigurationError, match="node 'a' timeout must be a positive number of seconds"):
        Workflow("w").add_node("a", _echo, timeout=value)
    with pytest.raises(ConfigurationError, match="step 'b' timeout must be a positive number of seconds"):
        step("b", timeout=value)(_echo)


@pytest.mark.parametrize("value", NOT_SECONDS)
def test_tool_timeouts_that_are_not_positive_seconds_are_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a positive number of seconds"):
        tool(timeout=value)(_echo)
    with pytest.raises(ConfigurationError, match="default_timeout must be a positive number of seconds"):
        ToolBox(default_timeout=value)


@pytest.mark.parametrize("value", NOT_SECONDS)
def test_a_retry_budget_that_is_not_positive_seconds_is_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="total_timeout"):
        RetryPolicy(total_timeout=value)


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"initial_delay": float("nan")},
        {"initial_delay": -1},
        {"max_delay": float("inf")},
        {"multiplier": 0.5},
        {"jitter": float("nan")},
        {"jitter": "0.1"},
    ],
)
def test_retry_numbers_outside_their_range_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        RetryPolicy(**options)


async def test_an_infinite_timeout_means_no_limit() -> None:
    def done(context: Any) -> str:
        return "ran"

    workflow = Workflow("w", timeout=float("inf")).add_node("a", done, timeout=float("inf")).set_entry_point("a")
    assert (await workflow.execute(3)).output == "ran"
    agent = Agent(model=ScriptedModel(["done"]), tools=[tool(timeout=float("inf"))(_echo)])
    assert (await agent.run("hi")).content == "done"
