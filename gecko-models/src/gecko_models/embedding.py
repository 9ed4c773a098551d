"""`LiteLLMEmbedder`: any litellm embedding model as a Gecko `Embedder`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import SecretStr

from gecko.errors import ConfigurationError, ModelOutputError
from gecko.plugins.models import Embedder, ModelConfig, RetryPolicy
from gecko.types import TokenUsage
from gecko_models import _litellm

__all__ = ("LiteLLMEmbedder",)


class LiteLLMEmbedder(Embedder):
    """Embeddings through litellm.

    Example: `LiteLLMEmbedder(config=ModelConfig(model_name="text-embedding-3-small"), dimension=1536)`.

    Args:
        config: model name, key, endpoint, timeout and retries.
        dimension: the length of every vector; a reply of another length is a `ModelOutputError`.
        model: the model name, instead of (or overriding) `config.model_name`.
        batch_size: texts per request.
        retry: the retry policy; by default `config.max_retries` retries.
        **settings: `api_key`, `api_base`, `timeout` without a config, and further litellm parameters.
    """

    provider: ClassVar[str] = "litellm-embedding"

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        dimension: int,
        model: str | None = None,
        batch_size: int = 128,
        retry: RetryPolicy | None = None,
        **settings: Any,
    ) -> None:
        connection = ("api_key", "api_base", "timeout")
        fields: dict[str, Any] = {key: settings.pop(key) for key in connection if key in settings}
        name = model or (config.model_name if config is not None else "")
        if not name:
            raise ConfigurationError("LiteLLMEmbedder needs a model: pass config=ModelConfig(model_name=...) or model=")
        base = config or ModelConfig(model_name=name)
        self.config = base.model_copy(update={"model_name": name, **fields, "extra": {**base.extra, **settings}})
        _litellm.checked_timeout(self.config.timeout)
        if dimension < 1:
            raise ConfigurationError(f"dimension must be positive, got {dimension}")
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be positive, got {batch_size}")
        self.dimension = dimension
        self.model = name
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy(max_attempts=self.config.max_retries + 1)
        self.usage = TokenUsage()
        """Tokens and requests spent by this embedder so far, as the provider reported them."""

    def __repr__(self) -> str:
        return f"LiteLLMEmbedder(model={self.model!r}, dimension={self.dimension})"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order, sent in batches of `batch_size`."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(await self._embed_batch(list(texts[start : start + self.batch_size])))
        return vectors

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        litellm = await _litellm.load_litellm()
        config = self.config

        async def attempt(remaining: float | None) -> Any:
            timeout = config.timeout if remaining is None else max(0.001, min(config.timeout, remaining))
            arguments: dict[str, Any] = {
                "model": config.model_name,
                "input": texts,
                "timeout": timeout,
                "num_retries": 0,
                "max_retries": 0,
                **config.extra,
            }
            api_key = config.api_key
            if api_key is not None:
                arguments["api_key"] = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
            if config.api_base is not None:
                arguments["api_base"] = config.api_base

            async def call() -> Any:
                try:
                    return await litellm.aembedding(**arguments)
                except Exception as exc:
                    raise _litellm.translate_error(
                        exc, config.model_name, timeout=config.timeout, api_base=config.api_base
                    ) from exc

            return await _litellm.within(timeout, config.model_name, "for the embeddings", call)

        raw = await self.retry.run(attempt)
        try:
            vectors = self._vectors(raw.data, len(texts))
            usage = _litellm.to_usage(getattr(raw, "usage", None))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise _litellm.malformed(self.model, "an embeddings reply", exc) from exc
        self.usage = self.usage + usage
        return vectors

    def _vectors(self, data: Any, count: int) -> list[list[float]]:
        """The vectors of `data` in input order; each index 0..count-1 exactly once, each value finite."""
        by_index: dict[int, list[float]] = {}
        for item in data:
            index = _field(item, "index")
            if type(index) is not int or index in by_index or not 0 <= index < count:
                raise ModelOutputError(
                    f"{self.model}: the reply numbers its vectors {index!r}, not each of 0..{count - 1} once; "
                    "check the endpoint"
                )
            vector = [float(value) for value in _field(item, "embedding")]
            if len(vector) != self.dimension:
                raise ModelOutputError(
                    f"{self.model}: the provider returned vectors of length {len(vector)}, not {self.dimension}; "
                    "set dimension= to the model's output size"
                )
            if not all(math.isfinite(value) for value in vector):
                raise ModelOutputError(f"{self.model}: the provider returned a vector holding NaN or infinity")
            by_index[index] = vector
        if len(by_index) != count:
            raise ModelOutputError(
                f"{self.model}: {count} texts sent but {len(by_index)} vectors returned; check the endpoint"
            )
        return [by_index[index] for index in range(count)]


def _field(item: Any, name: str) -> Any:
    if isinstance(item, dict):
        return item[name]
    if not hasattr(item, "embedding"):
        raise TypeError(f"an entry of data is {type(item).__name__}, not an embedding object")
    return getattr(item, name)
