"""`gecko plugins` keeps working, and shows the error, with a broken plugin installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _gecko(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gecko.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **environment},
    )


def test_plugins_table_shows_the_import_error_of_a_broken_plugin() -> None:
    result = _gecko("plugins")
    assert result.returncode == 0, result.stderr
    broken = [line for line in result.stdout.splitlines() if "fakebroken" in line]
    assert len(broken) == 2  # its storage scheme and its hook plugin
    assert all("error" in line and "exploded on import" in line for line in broken)


def test_plugins_json_lists_every_fake_plugin_with_status() -> None:
    result = _gecko("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(row["kind"], row["name"], row["distribution"]): row for row in json.loads(result.stdout)}
    assert rows[("storage", "fakegood", "gecko-fake-good")]["status"] == "loaded"
    assert rows[("storage", "fakegood", "gecko-fake-good")]["version"] == "0.0.1"
    assert isinstance(rows[("storage", "fakegood", "gecko-fake-good")]["import_ms"], float)
    assert rows[("hook", "fakebroken", "gecko-fake-broken")]["status"] == "error"
    assert "exploded on import" in rows[("hook", "fakebroken", "gecko-fake-broken")]["error"]
    assert rows[("storage", "fakedup", "gecko-fake-dup-b")]["status"] == "error"


def test_plugins_in_strict_mode_fails_with_the_error_and_no_traceback() -> None:
    result = _gecko("plugins", GECKO_STRICT_PLUGINS="1", GECKO_DISABLED_PLUGINS="fakedup")
    assert result.returncode == 1
    assert "exploded on import" in result.stderr
    assert "Traceback" not in result.stderr
