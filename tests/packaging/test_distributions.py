"""Our distributions install from our own wheels: `gecko-ai[all]` never resolves a `gecko*` name elsewhere.

Run by `nox -s packaging`, which provides `uv`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
META = "gecko-ai"
EXTRA = "all"

# Printed by the fresh environment: every top-level `gecko*` module, the distribution it came from,
# and where that distribution was installed from.
LIST_MODULES = r"""
import importlib.metadata as metadata, json
rows = []
for module, names in sorted(metadata.packages_distributions().items()):
    if module.startswith("gecko"):
        for name in names:
            dist = metadata.distribution(name)
            origin = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "the package index")
            rows.append([module, dist.metadata["Name"], dist.version, origin])
print(json.dumps(rows))
"""


def _projects() -> dict[str, Path]:
    """Our distributions: every folder with a pyproject.toml, by canonical distribution name."""
    found = {}
    for pyproject in sorted(ROOT.glob("gecko-*/pyproject.toml")):
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        found[canonicalize_name(name)] = pyproject.parent
    return found


def _ours(name: str) -> bool:
    return canonicalize_name(name).startswith("gecko")


def _requirements(folder: Path) -> list[tuple[str, Requirement]]:
    """(where, requirement) for every dependency and extra of the project in `folder`."""
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    found = [(f"{folder.name} dependencies", Requirement(text)) for text in project.get("dependencies", [])]
    for extra, texts in project.get("optional-dependencies", {}).items():
        found += [(f"{folder.name}[{extra}]", Requirement(text)) for text in texts]
    return found


def _closure(projects: dict[str, Path], name: str, extras: set[str]) -> set[str]:
    """Our distribution names that installing `name[extras]` pulls in; fails naming any we do not build."""
    wanted, todo = set(), [(canonicalize_name(name), frozenset(extras))]
    while todo:
        current, current_extras = todo.pop()
        if (current, current_extras) in wanted:
            continue
        wanted.add((current, current_extras))
        project = tomllib.loads((projects[current] / "pyproject.toml").read_text())["project"]
        texts = list(project.get("dependencies", []))
        for extra in current_extras:
            texts += project.get("optional-dependencies", {}).get(extra, [])
        for requirement in map(Requirement, texts):
            if not _ours(requirement.name):
                continue
            target = canonicalize_name(requirement.name)
            if target not in projects:
                pytest.fail(
                    f"{current}[{','.join(sorted(current_extras))}] requires {requirement}, a distribution this "
                    f"repository does not build (no gecko-*/pyproject.toml names it); ours are {sorted(projects)}"
                )
            todo.append((target, frozenset(requirement.extras)))
    return {current for current, _ in wanted}


def test_every_requirement_on_a_gecko_name_names_a_distribution_we_build() -> None:
    projects = _projects()
    foreign = [
        f"{where}: {requirement}"
        for folder in projects.values()
        for where, requirement in _requirements(folder)
        if _ours(requirement.name) and canonicalize_name(requirement.name) not in projects
    ]
    assert not foreign, f"requirements naming distributions this repository does not build: {foreign}"


def test_gecko_ai_all_installs_every_gecko_module_from_our_own_wheels(tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv is not None, "these tests need uv: run them with `nox -s packaging`"
    projects = _projects()
    needed = _closure(projects, META, {EXTRA})
    wheels = tmp_path / "wheels"
    for name in sorted(needed):
        subprocess.run([uv, "build", "--wheel", "--quiet", "--out-dir", str(wheels), str(projects[name])], check=True)
    built = {canonicalize_name(path.name.split("-")[0]): path for path in wheels.glob("*.whl")}
    assert set(built) == needed, f"built {sorted(built)}, needed {sorted(needed)}"

    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    # Every one of our names is pinned to the wheel just built (a direct reference, no index
    # fallback); third-party names come from the index.
    pinned = [
        f"{name}[{EXTRA}] @ {built[name].as_uri()}" if name == META else f"{name} @ {built[name].as_uri()}"
        for name in sorted(needed)
    ]
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), *pinned],
        check=True,
    )
    listing = subprocess.run([str(python), "-c", LIST_MODULES], capture_output=True, text=True, check=True)
    rows = json.loads(listing.stdout)
    print(f"gecko* modules in a fresh environment with {META}[{EXTRA}] installed:")
    for module, distribution, version, origin in rows:
        print(f"  {module:28} {distribution} {version}  from {origin}")
    by_distribution = {canonicalize_name(distribution): origin for _, distribution, _, origin in rows}
    strangers = {name: origin for name, origin in by_distribution.items() if name not in built}
    assert not strangers, f"gecko* modules from distributions this repository does not build: {strangers}"
    elsewhere = {name: origin for name, origin in by_distribution.items() if origin != built[name].as_uri()}
    assert not elsewhere, f"our distributions installed from somewhere other than our wheels: {elsewhere}"
    assert set(by_distribution) == needed - {canonicalize_name(META)}, "every needed distribution provides a module"
