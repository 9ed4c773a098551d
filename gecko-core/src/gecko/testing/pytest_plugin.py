"""Opt-in pytest fixtures for testing Gecko agents; enable with `pytest_plugins = ["gecko.testing.pytest_plugin"]`.

Fixtures:
    gecko_storage: a fresh in-process `memory://` storage.
    scripted_agent: a factory `scripted_agent(replies, tools=(), **agent_options) -> Agent`
        whose model is a `ScriptedModel` (reach it as `agent.model`).
    gecko_events: an `EventRecorder` whose `bus` records every published event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import pytest

from gecko.core.agent import Agent
from gecko.core.events import EventBus
from gecko.core.toolbox import Tool
from gecko.plugins.storage.memory import MemoryStorage
from gecko.testing.models import Reply, ScriptedModel
from gecko.types import Event

__all__ = ("EventRecorder", "ScriptedAgentFactory", "gecko_storage", "scripted_agent", "gecko_events")


class ScriptedAgentFactory(Protocol):
    """Builds an agent answering from a script."""

    def __call__(
        self, replies: Sequence[Reply], tools: Iterable[Tool | Callable[..., Any]] = (), **options: Any
    ) -> Agent: ...


class EventRecorder:
    """An `EventBus` (not forwarded to hook plugins) with every event it published."""

    def __init__(self) -> None:
        self.bus = EventBus(forward_to_plugins=False)
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)

    @property
    def types(self) -> list[str]:
        """The types of the recorded events, in order."""
        return [event.type for event in self.events]


@pytest.fixture
def gecko_storage() -> MemoryStorage:
    """A fresh in-process storage (nothing to release)."""
    return MemoryStorage()


@pytest.fixture
def scripted_agent() -> ScriptedAgentFactory:
    """A factory of agents on a `ScriptedModel`."""

    def build(replies: Sequence[Reply], tools: Iterable[Tool | Callable[..., Any]] = (), **options: Any) -> Agent:
        return Agent(ScriptedModel(replies), tools=tools, **options)

    return build


@pytest.fixture
def gecko_events() -> EventRecorder:
    """A recording event bus; pass `gecko_events.bus` as an agent's `event_bus`."""
    return EventRecorder()
