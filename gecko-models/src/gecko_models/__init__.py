"""Gecko chat models and embedders over litellm.

Installed, they register in the `gecko.models` entry-point group, so
`from gecko.plugins.models import ZhipuChat` and `create_model("zhipu:glm-4-flash")` find them.
litellm itself is imported on first use, never at import time.
"""

from gecko.plugins.models import RetryPolicy
from gecko_models._version import __version__
from gecko_models.chat import LiteLLMChat
from gecko_models.embedding import LiteLLMEmbedder
from gecko_models.fallback import FallbackModel
from gecko_models.presets import AnthropicChat, OllamaChat, OpenAIChat, ZhipuChat

__all__ = (
    "__version__",
    "LiteLLMChat",
    "OpenAIChat",
    "ZhipuChat",
    "OllamaChat",
    "AnthropicChat",
    "LiteLLMEmbedder",
    "FallbackModel",
    "RetryPolicy",
)
