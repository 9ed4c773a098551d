"""`AgentBuilder`: a fluent way to assemble an `Agent`.

Example:
    ```python
    agent = (
        AgentBuilder()
        .with_model(model)
        .with_tools([add])
        .with_system_prompt("You are a careful assistant.")
        .with_session_id("user-42")
        .with_storage("sqlite:///./sessions.db")
        .build()
    )
    output = await agent.run("What is 2 + 3?")
    ```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gecko.core.agent import Agent, StrategyChoice
from gecko.core.engine import Memory
from gecko.core.events import EventBus
from gecko.core.state import UsageLimits
from gecko.core.toolbox import Tool, ToolBox
from gecko.errors import ConfigurationError
from gecko.plugins.models import ChatModel, create_model
from gecko.plugins.storage import Storage

__all__ = ("AgentBuilder",)


class AgentBuilder:
    """Collects an agent's parts; `build()` checks them and returns the `Agent`.

    Every `with_*` method returns the builder, so calls chain.
    """

    def __init__(self) -> None:
        self._model: ChatModel | None = None
        self._tools: list[Tool | Callable[..., Any]] = []
        self._toolbox: ToolBox | None = None
        self._options: dict[str, Any] = {}

    def with_model(self, model: ChatModel | str, **settings: Any) -> AgentBuilder:
        """Use `model`: a `ChatModel`, or a `'provider:model'` spec created with `settings`."""
        self._model = create_model(model, **settings) if isinstance(model, str) else model
        return self

    def with_tools(self, tools: ToolBox | Iterable[Tool | Callable[..., Any]]) -> AgentBuilder:
        """Add tools (`Tool`s or plain functions), or use a ready `ToolBox`."""
        if isinstance(tools, ToolBox):
            self._toolbox = tools
        else:
            self._tools.extend(tools)
        return self

    def with_system_prompt(self, prompt: str) -> AgentBuilder:
        """Send `prompt` as the system message of every request."""
        self._options["system_prompt"] = prompt
        return self

    def with_session_id(self, session_id: str) -> AgentBuilder:
        """Keep the conversation under `session_id` in the storage between runs."""
        self._options["session_id"] = session_id
        return self

    def with_memory(self, memory: Memory) -> AgentBuilder:
        """Choose the window of the conversation sent to the model (e.g. `TokenMemory`)."""
        self._options["memory"] = memory
        return self

    def with_output_type(
        self, output_type: type[Any], *, strategy: StrategyChoice = "auto", retries: int = 2, lax: bool = False
    ) -> AgentBuilder:
        """Parse final answers into `output_type` (`AgentOutput.data`) through the `StructureEngine`.

        Validation is strict unless `lax` lets pydantic coerce types (`"0.9"` to 0.9).
        """
        self._options.update(
            output_type=output_type, structure_strategy=strategy, structure_retries=retries, structure_lax=lax
        )
        return self

    def with_storage(self, storage: Storage | str) -> AgentBuilder:
        """Keep sessions and paused runs in `storage` (a `Storage` or a URL such as `sqlite:///./gecko.db`)."""
        self._options["storage"] = storage
        return self

    def with_max_turns(self, max_turns: int) -> AgentBuilder:
        """Allow at most `max_turns` model requests per run."""
        self._options["max_turns"] = max_turns
        return self

    def with_usage_limits(self, limits: UsageLimits) -> AgentBuilder:
        """Bound every run's requests and tokens."""
        self._options["usage_limits"] = limits
        return self

    def with_loop_breaker(self, max_repeated_tool_calls: int) -> AgentBuilder:
        """Refuse the `max_repeated_tool_calls`-th identical tool call; one more ends the run."""
        self._options["max_repeated_tool_calls"] = max_repeated_tool_calls
        return self

    def with_tool_retries(self, max_tool_retries: int) -> AgentBuilder:
        """Answer up to this many consecutive turns of invalid tool calls with errors before failing."""
        self._options["max_tool_retries"] = max_tool_retries
        return self

    def with_max_tool_calls_per_turn(self, max_tool_calls_per_turn: int) -> AgentBuilder:
        """Refuse, whole, any reply asking for more than this many tool calls (default 16)."""
        self._options["max_tool_calls_per_turn"] = max_tool_calls_per_turn
        return self

    def with_event_bus(self, bus: EventBus) -> AgentBuilder:
        """Publish events on `bus` and apply its middleware."""
        self._options["event_bus"] = bus
        return self

    def with_name(self, name: str) -> AgentBuilder:
        """Name the agent (the `source` of its events)."""
        self._options["name"] = name
        return self

    def build(self) -> Agent:
        """The configured `Agent`.

        Raises:
            ConfigurationError: no model was given, or tools were given both as a `ToolBox` and one by one.
        """
        if self._model is None:
            raise ConfigurationError("AgentBuilder needs a model: call .with_model(model) before .build()")
        if self._toolbox is not None and self._tools:
            raise ConfigurationError("pass tools either as one ToolBox or as a list of tools, not both")
        tools: ToolBox | list[Tool | Callable[..., Any]] = self._toolbox if self._toolbox is not None else self._tools
        return Agent(self._model, tools=tools, **self._options)
