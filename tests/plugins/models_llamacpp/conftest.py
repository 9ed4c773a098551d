"""One SmolLM2-135M model for the whole session, shared by the asyncio and trio runs."""

from __future__ import annotations

import pytest
from gecko_models_llamacpp import LlamaCppChat


@pytest.fixture(scope="session")
def local_model() -> LlamaCppChat:
    """The default local model, loaded once on its first request."""
    return LlamaCppChat(max_tokens=256)
