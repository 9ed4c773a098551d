"""The `gecko` command."""

from __future__ import annotations

import json
import sys

import pytest

from gecko.cli import main


def test_plugins_table_lists_the_builtin_memory_storage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["KIND", "NAME", "DISTRIBUTION", "VERSION", "STATUS"]
    assert any(line.split()[:2] == ["storage", "memory"] and "builtin" in line for line in lines)


def test_plugins_json_lists_kind_name_distribution_version_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    memory = next(row for row in rows if row["kind"] == "storage" and row["name"] == "memory")
    assert memory["distribution"] == "gecko-ai-core"
    assert memory["status"] == "builtin"
    assert set(memory) >= {"kind", "name", "distribution", "version", "status", "error", "import_ms"}


def test_plugins_without_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_yaml_commands_without_the_plugin_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("gecko_config_yaml", "gecko_config_yaml.cli"):  # as if not installed, even if imported before
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["run", "flow.yaml", "--input", "x"]) == 2
    assert main(["workflow", "show", "flow.yml"]) == 2
    err = capsys.readouterr().err
    assert err.count("pip install gecko-ai-config-yaml") == 2
