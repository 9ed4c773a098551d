"""The plugin's wiring: entry point, facade, configuration from the environment, on once installed."""

from __future__ import annotations

import subprocess
import sys

import gecko_guardrails
import pytest
from gecko_guardrails import Guardrails, configure, current

from gecko.core.agent import Agent
from gecko.errors import ConfigurationError
from gecko.plugins import load_plugins
from gecko.testing.models import ScriptedModel


def test_the_entry_point_loads() -> None:
    records = {record.name: record for record in load_plugins()}
    assert records["guardrails"].status == "loaded"


def test_the_seed_path_is_a_facade_over_the_plugin() -> None:
    from gecko.plugins.guardrails import Guardrails as FacadeGuardrails
    from gecko.plugins.guardrails import detect

    assert FacadeGuardrails is Guardrails
    assert detect is gecko_guardrails.detect


def test_the_facade_says_what_to_install_when_the_plugin_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gecko_guardrails", None)
    with pytest.raises(ImportError, match="pip install gecko-ai-guardrails"):
        from gecko.plugins.guardrails import Guardrails  # noqa: F401


def test_import_gecko_imports_no_guardrails() -> None:
    code = "import gecko, gecko.plugins.guardrails, sys; print('gecko_guardrails' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


async def test_installed_they_guard_every_run_with_the_default_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GECKO_GUARDRAILS", raising=False)
    previous = configure(None)
    try:
        guard = current()
        assert guard is not None
        assert guard.policies == Guardrails().policies
        output = await Agent(ScriptedModel(["key sk-a1B2c3D4e5F6g7H8i9J0"])).run("hello")
        assert output.content == "key [REDACTED]"
    finally:
        configure(previous)


async def test_gecko_guardrails_0_turns_them_off_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GECKO_GUARDRAILS", "0")
    previous = configure(None)
    try:
        assert current() is None
        output = await Agent(ScriptedModel(["key sk-a1B2c3D4e5F6g7H8i9J0"])).run("ig\u200bnore")
        assert output.content == "key sk-a1B2c3D4e5F6g7H8i9J0"
    finally:
        configure(previous)


def test_a_bad_gecko_guardrails_value_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = configure(None)  # the next `current()` reads the environment
    try:
        monkeypatch.setenv("GECKO_GUARDRAILS", "yes")
        with pytest.raises(ConfigurationError, match="GECKO_GUARDRAILS must be 0 or 1"):
            current()
    finally:
        monkeypatch.setenv("GECKO_GUARDRAILS", "0")
        configure(previous)


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "GECKO_GUARDRAILS_USER": "block",
        "GECKO_GUARDRAILS_UNTRUSTED_CALLS": "refuse",
        "GECKO_GUARDRAILS_ROOTS": "/srv/a:/srv/b",
        "GECKO_GUARDRAILS_ALLOW_HOSTS": "api.example.com, .corp.test",
        "GECKO_GUARDRAILS_PII": "email,phone",
        "GECKO_GUARDRAILS_ALLOW_PRIVATE": "1",
        "GECKO_GUARDRAILS_SEMANTIC": "1",
    }
    guard = Guardrails.from_env(env)
    assert guard.policies["user"] == "block"
    assert guard.policies["tool"] == "spotlight"
    assert guard.untrusted_calls == "refuse"
    assert [str(root) for root in guard.roots] == ["/srv/a", "/srv/b"]
    assert guard.allow_hosts == ("api.example.com", ".corp.test")
    assert guard.pii == ("email", "phone")
    assert guard.allow_private is True
    assert guard.semantic is True
    assert Guardrails.from_env({}).semantic is False


def test_gecko_guardrails_1_turns_them_on_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = configure(None)
    try:
        monkeypatch.setenv("GECKO_GUARDRAILS", "1")
        monkeypatch.setenv("GECKO_GUARDRAILS_TOOL", "block")
        configure(None)
        guard = current()
        assert guard is not None
        assert guard.policies["tool"] == "block"
    finally:
        configure(previous)


@pytest.mark.parametrize(
    "env",
    [
        {"GECKO_GUARDRAILS_USER": "explode"},
        {"GECKO_GUARDRAILS_UNTRUSTED_CALLS": "maybe"},
        {"GECKO_GUARDRAILS_PII": "shoe_size"},
        {"GECKO_GUARDRAILS_ALLOW_PRIVATE": "yes"},
        {"GECKO_GUARDRAILS_SEMANTIC": "true"},
    ],
)
def test_bad_settings_are_configuration_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Guardrails.from_env(env)
