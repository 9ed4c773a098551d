"""Discovery tests need the fake distributions in tests/discovery/dists installed (nox -s discovery)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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


def imported_off_the_event_loop(module: str, body: str, backend: str) -> bool:
    """In a fresh process on `backend`: does running `body` import `module` on a thread other than the loop's?

    `module` records the thread that imported it in `IMPORTED_ON_THREAD`; `body` is the inside of an async function.
    """
    code = (
        "import sys, threading, anyio\n"
        "async def main():\n"
        f"    assert {module!r} not in sys.modules\n"
        f"{textwrap.indent(textwrap.dedent(body), '    ')}\n"
        f"    print(sys.modules[{module!r}].IMPORTED_ON_THREAD != threading.get_ident())\n"
        f"anyio.run(main, backend={backend!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return result.stdout.strip() == "True"
