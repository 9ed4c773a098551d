"""Discovery tests need the fake distributions in tests/discovery/dists installed (nox -s discovery)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pytest

PLUGIN_VARIABLES = (
    "GECKO_DISABLE_PLUGIN_AUTOLOAD",
    "GECKO_LOAD_PLUGINS",
    "GECKO_DISABLED_PLUGINS",
    "GECKO_STRICT_PLUGINS",
)
FAKE_DISTRIBUTIONS = (
    "gecko-fake-good",
    "gecko-fake-broken",
    "gecko-fake-dup-a",
    "gecko-fake-dup-b",
    "gecko-fake-recorder",
)


def pytest_configure(config: pytest.Config) -> None:
    missing = []
    for name in FAKE_DISTRIBUTIONS:
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(name)
    if missing:
        raise pytest.UsageError(
            f"tests/discovery needs {', '.join(missing)} installed: run `nox -s discovery`, or "
            "`pip install ./tests/discovery/dists/*` into this environment"
        )


@pytest.fixture(autouse=True)
def _clean_plugin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in PLUGIN_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
