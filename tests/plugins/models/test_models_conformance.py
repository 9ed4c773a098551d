from __future__ import annotations

import pytest
from gecko_models import LiteLLMChat, OpenAIChat

from gecko.plugins.models import ChatModel
from gecko.testing.conformance import ModelConformance
from gecko.testing.server import OpenAIServer


class TestLiteLLMChatConformance(ModelConformance):
    @pytest.fixture
    def model(self, model_server: OpenAIServer) -> ChatModel:
        return LiteLLMChat("openai/scripted-model", api_key="test-key", api_base=model_server.base_url)


class TestOpenAIChatConformance(ModelConformance):
    """OpenAIChat declares json_schema and vision, so those checks run their positive branch."""

    @pytest.fixture
    def model(self, model_server: OpenAIServer) -> ChatModel:
        return OpenAIChat(model="gpt-4o-mini", api_key="test-key", api_base=model_server.base_url)
