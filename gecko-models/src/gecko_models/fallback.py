"""`FallbackModel`: try chat models in order until one answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

from gecko.errors import ConfigurationError, ModelError
from gecko.plugins.models import (
    RETRYABLE_ERRORS,
    ChatModel,
    ModelCapabilities,
    ModelChunk,
    ModelRequest,
    ModelResponse,
)

__all__ = ("FallbackModel",)

DEFAULT_FALLBACK_ON: tuple[type[ModelError], ...] = RETRYABLE_ERRORS
"""The errors that pass a request on: those a model's own retries give up on."""


class FallbackModel(ChatModel):
    """Asks each model in turn; moves on only when a model fails with one of the `on` errors.

    Each model runs its own retries first, so a fallback happens once a model has given up.
    Capabilities are those all models share, so a request the first model accepts never
    reaches a model that cannot serve it.

    Args:
        models: the models, most preferred first.
        on: error classes that pass the request to the next model; others are raised at once.
    """

    provider: ClassVar[str] = "fallback"

    def __init__(self, models: Sequence[ChatModel], *, on: tuple[type[BaseException], ...] = DEFAULT_FALLBACK_ON):
        if not models:
            raise ConfigurationError("FallbackModel needs at least one model")
        self.models = list(models)
        self.on = on
        self.model = self.models[0].model
        self.sends_extra_headers = all(m.sends_extra_headers for m in self.models)
        flags = [m.capabilities for m in self.models]
        self.capabilities = ModelCapabilities(
            tools=all(f.tools for f in flags),
            json_schema=all(f.json_schema for f in flags),
            grammar=all(f.grammar for f in flags),
            streaming=all(f.streaming for f in flags),
            vision=all(f.vision for f in flags),
        )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The first answer among the models; the last model's error if all fail."""
        for model in self.models[:-1]:
            try:
                return await model.complete(request)
            except self.on:
                continue
        return await self.models[-1].complete(request)

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """The first model's stream that opens; a model failing after its first chunk is not replaced."""
        return self._stream(request)

    async def _stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        for index, model in enumerate(self.models):
            chunks = model.stream(request)
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except self.on:
                if index == len(self.models) - 1:
                    raise
                continue
            yield first
            async for chunk in chunks:
                yield chunk
            return

    async def aclose(self) -> None:
        """Close every model."""
        for model in self.models:
            await model.aclose()
