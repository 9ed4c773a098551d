"""Presets: litellm chat models with each provider's prefix, endpoint and environment variables."""

from __future__ import annotations

from typing import ClassVar

from gecko.errors import ConfigurationError
from gecko.plugins.models import ModelCapabilities
from gecko_models.chat import LiteLLMChat

__all__ = ("OpenAIChat", "ZhipuChat", "OllamaChat", "AnthropicChat")


class OpenAIChat(LiteLLMChat):
    """OpenAI chat models, e.g. `OpenAIChat(model="gpt-4o-mini")`; key from `OPENAI_API_KEY`.

    Also any OpenAI-compatible server: pass its `api_base`.
    """

    provider: ClassVar[str] = "openai"
    litellm_prefix: ClassVar[str] = "openai/"
    api_key_env: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    api_base_env: ClassVar[tuple[str, ...]] = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
    default_model: ClassVar[str] = "gpt-4o-mini"
    default_capabilities: ClassVar[ModelCapabilities] = ModelCapabilities(
        tools=True, json_schema=True, streaming=True, vision=True
    )


class ZhipuChat(LiteLLMChat):
    """Zhipu GLM models, e.g. `ZhipuChat(model="glm-4-flash")`; key from `ZHIPUAI_API_KEY` or `ZHIPU_API_KEY`.

    Zhipu's API speaks the OpenAI protocol, so requests go through litellm's OpenAI client to
    `https://open.bigmodel.cn/api/paas/v4`, or to `api_base`, `ZHIPUAI_API_BASE` or `ZHIPU_API_BASE`.
    Both spellings of each variable are read, `ZHIPUAI_` first (the zhipuai SDK's).
    """

    provider: ClassVar[str] = "zhipu"
    litellm_prefix: ClassVar[str] = "openai/"
    api_key_env: ClassVar[tuple[str, ...]] = ("ZHIPUAI_API_KEY", "ZHIPU_API_KEY")
    api_base_env: ClassVar[tuple[str, ...]] = ("ZHIPUAI_API_BASE", "ZHIPU_API_BASE")
    default_api_base: ClassVar[str | None] = "https://open.bigmodel.cn/api/paas/v4"
    default_model: ClassVar[str] = "glm-4-flash"
    default_capabilities: ClassVar[ModelCapabilities] = ModelCapabilities(tools=True, streaming=True)

    def _missing_api_key(self) -> str | None:
        # Never let the OpenAI client fall back to OPENAI_API_KEY and send it to another provider.
        raise ConfigurationError("ZhipuChat needs an API key: pass api_key= or set ZHIPUAI_API_KEY or ZHIPU_API_KEY")


class OllamaChat(LiteLLMChat):
    """Local Ollama models, e.g. `OllamaChat(model="llama3.1")`, through Ollama's OpenAI-compatible API.

    The endpoint is `http://localhost:11434/v1` unless `api_base` or `OLLAMA_API_BASE` says otherwise.
    """

    provider: ClassVar[str] = "ollama"
    litellm_prefix: ClassVar[str] = "openai/"
    api_key_env: ClassVar[tuple[str, ...]] = ("OLLAMA_API_KEY",)
    api_base_env: ClassVar[tuple[str, ...]] = ("OLLAMA_API_BASE",)
    default_api_base: ClassVar[str | None] = "http://localhost:11434/v1"
    default_capabilities: ClassVar[ModelCapabilities] = ModelCapabilities(tools=True, streaming=True)

    def _missing_api_key(self) -> str | None:
        # Ollama needs no key, but the OpenAI client insists on one; never send OPENAI_API_KEY there.
        return "ollama"


class AnthropicChat(LiteLLMChat):
    """Anthropic Claude models, e.g. `AnthropicChat(model="claude-3-5-haiku-latest")`; key from `ANTHROPIC_API_KEY`."""

    provider: ClassVar[str] = "anthropic"
    litellm_prefix: ClassVar[str] = "anthropic/"
    api_key_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    api_base_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")
    default_capabilities: ClassVar[ModelCapabilities] = ModelCapabilities(tools=True, streaming=True, vision=True)
