"""Provider presets (`ZhipuChat`, `OpenAIChat`, ...), resolved lazily from the installed model plugins.

The classes live in `gecko-ai-models`; these modules keep the seed's import paths working and
say what to install when the plugin is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gecko.errors import PluginNotFoundError

if TYPE_CHECKING:
    from gecko.plugins.models import ChatModel, Embedder

__all__ = ("PRESET_PROVIDERS", "resolve_preset", "OpenAIChat", "ZhipuChat", "OllamaChat", "AnthropicChat")

PRESET_PROVIDERS: dict[str, str] = {
    "LiteLLMChat": "litellm",
    "OpenAIChat": "openai",
    "ZhipuChat": "zhipu",
    "OllamaChat": "ollama",
    "AnthropicChat": "anthropic",
    "LiteLLMEmbedder": "litellm-embedding",
}
"""Class name → the `gecko.models` provider name that supplies it."""


def resolve_preset(module: str, name: str) -> type[ChatModel] | type[Embedder]:
    """The class `name` from the installed model plugins, for a module-level `__getattr__`.

    Raises:
        AttributeError: `module` has no such preset.
        ImportError: no installed plugin provides it; the message says what to `pip install`.
    """
    provider = PRESET_PROVIDERS.get(name)
    if provider is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    from gecko.plugins.models import model_registry

    try:
        return model_registry.get(provider)
    except PluginNotFoundError as exc:
        raise ImportError(f"cannot import {name} from {module}: {exc}", name=module) from exc


def __getattr__(name: str) -> Any:
    return resolve_preset(__name__, name)
