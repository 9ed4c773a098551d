"""Pure data shared by every layer: messages, tool calls, usage and agent outputs."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = (
    "Role",
    "TextPart",
    "ImagePart",
    "ContentPart",
    "ToolCall",
    "Message",
    "TokenUsage",
    "AgentOutput",
    "FinishReason",
    "JSONValue",
    "Event",
)

JSONValue = Any
"""A value made of dict, list, str, int, float, bool and None only."""

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
"""Why a model stopped: a full answer, the output token limit, tool calls, the provider's filter, an error."""


class Role(str, Enum):
    """Who wrote a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


# Read once: on Python 3.11 every `Role.X` goes through the enum metaclass's `__getattr__`.
_SYSTEM, _USER, _ASSISTANT, _TOOL = Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.TOOL


class TextPart(BaseModel):
    """A piece of text inside a multimodal message."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image given by URL (`https://`, `data:`) inside a multimodal message."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["image"] = "image"
    url: str
    detail: Literal["auto", "low", "high"] = "auto"

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str = "image/png") -> ImagePart:
        """Wrap raw image bytes as a `data:` URL."""
        encoded = base64.b64encode(data).decode("ascii")
        return cls(url=f"data:{media_type};base64,{encoded}")


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ToolCall(BaseModel):
    """A model's request to run one tool; `arguments` is the raw JSON text the model produced."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    name: str
    arguments: str = "{}"


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(defer_build=True)

    role: Role
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    # The constructors call the validator directly: what `cls(...)` does, without `__init__`'s overhead.
    @classmethod
    def system(cls, content: str) -> Message:
        message: Message = (_validators.get(cls) or _validator(cls))({"role": _SYSTEM, "content": content})
        return message

    @classmethod
    def user(cls, content: str | list[ContentPart]) -> Message:
        message: Message = (_validators.get(cls) or _validator(cls))({"role": _USER, "content": content})
        return message

    @classmethod
    def assistant(cls, content: str | None = None, tool_calls: list[ToolCall] | None = None) -> Message:
        message: Message = (_validators.get(cls) or _validator(cls))(
            {"role": _ASSISTANT, "content": content, "tool_calls": tool_calls or []}
        )
        return message

    @classmethod
    def tool(cls, tool_call_id: str, content: str, name: str | None = None) -> Message:
        message: Message = (_validators.get(cls) or _validator(cls))(
            {"role": _TOOL, "content": content, "tool_call_id": tool_call_id, "name": name}
        )
        return message

    @property
    def text(self) -> str:
        """The message's text, with the text parts of multimodal content joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


_validators: dict[type[Message], Callable[[Any], Any]] = {}
"""`validate_python` of each built message class: a read of `cls.__pydantic_validator__` passes
through the pydantic metaclass's `__getattr__` first, which costs as much as a small validation."""


def _validator(cls: type[Message]) -> Callable[[Any], Any]:
    cls.model_rebuild()  # builds a class that deferred it; nothing to do once built
    found = _validators[cls] = cls.__pydantic_validator__.validate_python
    return found


class TokenUsage(BaseModel):
    """Tokens and requests spent; provider-reported numbers are the truth."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    requests: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            requests=self.requests + other.requests,
        )


class AgentOutput(BaseModel):
    """The result of an agent run."""

    model_config = ConfigDict(defer_build=True)

    content: str = ""
    data: Any = None
    messages: list[Message] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    finish_reason: FinishReason = "stop"
    """Why the model ended the answer: "length" is cut at the output token limit, "content_filter"
    withheld by the provider (`content` may be empty); a structured answer given by tool call is "stop"."""

    def __str__(self) -> str:
        return self.content


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in an engine, e.g. `model.finished` or `workflow.node.skipped`.

    `type` is dotted: `<component>.<what>`; `source` names the agent, workflow or team;
    `run_id` groups the events of one run; `data` holds JSON-compatible details.
    """

    type: str
    source: str
    run_id: str
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
