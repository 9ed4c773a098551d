from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gecko_models import AnthropicChat, LiteLLMChat, LiteLLMEmbedder, OllamaChat, OpenAIChat, ZhipuChat

from gecko.errors import ConfigurationError
from gecko.plugins.models import ModelRequest, create_model, model_registry
from gecko.testing.server import OpenAIServer
from gecko.types import Message

ENTRY_POINTS = {
    "litellm": LiteLLMChat,
    "openai": OpenAIChat,
    "zhipu": ZhipuChat,
    "ollama": OllamaChat,
    "anthropic": AnthropicChat,
    "litellm-embedding": LiteLLMEmbedder,
}


@pytest.mark.parametrize(("name", "cls"), ENTRY_POINTS.items())
def test_entry_point_resolves_to_the_class_declaring_that_provider(name: str, cls: type) -> None:
    assert model_registry.get(name) is cls
    assert cls.provider == name


def test_seed_import_paths_resolve_to_the_plugin_classes() -> None:
    from gecko.plugins.models import ZhipuChat as FromFacade
    from gecko.plugins.models.embedding import LiteLLMEmbedder as EmbedderFromFacade
    from gecko.plugins.models.embedding import ModelConfig
    from gecko.plugins.models.presets.zhipu import ZhipuChat as FromPreset

    assert FromFacade is FromPreset is ZhipuChat
    assert EmbedderFromFacade is LiteLLMEmbedder
    assert ModelConfig(model_name="m").model_name == "m"


def _run(code: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, check=False, cwd=cwd
    )


def test_missing_plugin_import_names_the_package_to_install() -> None:
    # A child process where entry-point discovery finds nothing, as if gecko-ai-models were not installed.
    code = (
        "from gecko.plugins import _loader\n"
        "_loader.discover = lambda group, name=None: []\n"
        "from gecko.plugins.models import ZhipuChat\n"
    )
    result = _run(code)
    assert "ImportError" in result.stderr
    assert "pip install gecko-ai-models" in result.stderr


def test_importing_and_building_models_does_not_import_litellm() -> None:
    code = (
        "import sys, gecko, gecko_models\n"
        "from gecko.plugins.models import ZhipuChat\n"
        "ZhipuChat(api_key='k', model='glm-4-flash')\n"
        "assert 'litellm' not in sys.modules and 'openai' not in sys.modules, 'imported eagerly'\n"
    )
    assert _run(code).returncode == 0


def test_loading_litellm_leaves_the_environment_alone(tmp_path: Path) -> None:
    # litellm's import reads a .env file from the working directory unless told it runs in production.
    (tmp_path / ".env").write_text("GECKO_DOTENV_PROBE=loaded\n")
    code = (
        "import os, anyio\n"
        "from gecko_models import _litellm\n"
        "anyio.run(_litellm.load_litellm)\n"
        "print(os.environ.get('GECKO_DOTENV_PROBE', 'absent'))\n"
    )
    result = _run(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "absent"


async def test_create_model_builds_a_preset_that_answers_over_http() -> None:
    async with OpenAIServer(["hi from glm"]) as server:
        model = create_model("zhipu:glm-4-flash", api_key="k", api_base=server.base_url)
        response = await model.complete(ModelRequest(messages=[Message.user("hi")]))
    assert response.message.text == "hi from glm"


@pytest.mark.parametrize("key_variable", ["ZHIPUAI_API_KEY", "ZHIPU_API_KEY"])
@pytest.mark.parametrize("base_variable", ["ZHIPUAI_API_BASE", "ZHIPU_API_BASE"])
async def test_zhipu_key_and_endpoint_come_from_either_spelling(
    monkeypatch: pytest.MonkeyPatch, key_variable: str, base_variable: str
) -> None:
    for name in ("ZHIPUAI_API_KEY", "ZHIPU_API_KEY", "ZHIPUAI_API_BASE", "ZHIPU_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(key_variable, "from-env")
    async with OpenAIServer(["ok"]) as server:
        monkeypatch.setenv(base_variable, server.base_url)
        await ZhipuChat(model="glm-4-flash").complete(ModelRequest(messages=[Message.user("hi")]))
        assert server.requests[0].headers["authorization"] == "Bearer from-env"


def test_zhipu_prefers_the_zhipuai_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIPUAI_API_BASE", "http://127.0.0.1:1/zhipuai")
    monkeypatch.setenv("ZHIPU_API_BASE", "http://127.0.0.1:1/zhipu")
    assert ZhipuChat(api_key="k").api_base == "http://127.0.0.1:1/zhipuai"


def test_zhipu_without_a_key_says_how_to_provide_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZHIPUAI_API_KEY", raising=False)
    monkeypatch.delenv("ZHIPU_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="ZHIPUAI_API_KEY or ZHIPU_API_KEY"):
        ZhipuChat(model="glm-4-flash")


@pytest.mark.parametrize(
    ("model", "litellm_model"),
    [
        (OpenAIChat(model="gpt-4o-mini", api_key="k"), "openai/gpt-4o-mini"),
        (ZhipuChat(model="glm-4-flash", api_key="k"), "openai/glm-4-flash"),
        (OllamaChat(model="llama3.1"), "openai/llama3.1"),
        (AnthropicChat(model="claude-3-5-haiku-latest", api_key="k"), "anthropic/claude-3-5-haiku-latest"),
        (LiteLLMChat("groq/llama3-8b-8192"), "groq/llama3-8b-8192"),
    ],
)
def test_presets_map_to_litellm_model_strings(model: LiteLLMChat, litellm_model: str) -> None:
    assert model.litellm_model == litellm_model


def test_default_endpoints_of_presets() -> None:
    assert ZhipuChat(api_key="k").api_base == "https://open.bigmodel.cn/api/paas/v4"
    assert OllamaChat(model="llama3.1").api_base == "http://localhost:11434/v1"
