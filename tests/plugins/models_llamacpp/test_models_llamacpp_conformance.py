from __future__ import annotations

import pytest
from gecko_models_llamacpp import LlamaCppChat

from gecko.plugins.models import ChatModel
from gecko.testing.conformance import ModelConformance


class TestLlamaCppChatConformance(ModelConformance):
    """The local model declares tools, json_schema and grammar, so those checks take their positive branch."""

    @pytest.fixture
    def model(self, local_model: LlamaCppChat) -> ChatModel:
        return local_model
