"""litellm's async client is asyncio-only, so this folder runs on asyncio alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gecko.plugins.models import RetryPolicy
from gecko.testing.models import reply, tool_calls_reply
from gecko.testing.processes import refused_port
from gecko.testing.server import OpenAIServer, ScriptItem


def pytest_configure(config: pytest.Config) -> None:
    # litellm silences these pydantic warnings about its own types with filters set at import
    # (litellm._process_defaults); pytest restores the filters after each test, so the test that
    # imported litellm takes them along and later tests would show litellm's noise.
    for message in ("conflict with protected namespace", "Accessing the.*attribute on the instance", "`ReadOnly`"):
        config.addinivalue_line("filterwarnings", f"ignore:.*{message}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Retries with waits short enough for tests."""
    return RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, total_timeout=10.0)


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """An OpenAI base URL on 127.0.0.1 where nothing listens.

    The port stays bound (never listening) for the whole test, so no other process can take it
    and answer meanwhile: connecting is refused every time.
    """
    with refused_port() as port:
        yield f"http://127.0.0.1:{port}/v1"


def answer_like_a_model(body: dict[str, Any]) -> ScriptItem:
    """Scripted answers to the prompts of `ModelConformance`, chosen from the request body."""
    if body.get("tools") and body.get("tool_choice") == "required":
        return tool_calls_reply(("get_weather", json.dumps({"city": "Paris"})), input_tokens=31, output_tokens=9)
    if body.get("response_format"):
        return reply(json.dumps({"city": "Paris"}), input_tokens=22, output_tokens=6)
    return reply("Hello there, it is sunny.", input_tokens=17, output_tokens=7)


@pytest.fixture(scope="module")
def model_server() -> Iterator[OpenAIServer]:
    """A server answering any number of requests like a cooperative model."""
    with OpenAIServer([answer_like_a_model], cycle=True) as server:
        yield server
