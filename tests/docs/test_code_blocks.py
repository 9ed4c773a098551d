"""Every code block of the documentation site works: Python blocks run, YAML definitions validate.

The Python blocks of one page run in order in one namespace, like a doctest file, inside one
event loop (top-level `await` is allowed), in a fresh working directory. They are offline: the
pages use the scripted models of `gecko.testing`.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from gecko_config_yaml import parse_definition

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^":]+)"$', re.MULTILINE)  # a whole file included from the repository
FENCE = re.compile(r"^```(?P<language>[\w-]*)[^\n]*\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = sorted(DOCS.rglob("*.md"))


def _blocks(page: Path, language: str) -> list[tuple[int, str]]:
    """(line, code) of every fenced block in `language` on `page`, with included files as the site shows them."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 2, SNIPPET.sub(_included, match["code"]))
        for match in FENCE.finditer(text)
        if match["language"] == language
    ]


def _included(match: re.Match[str]) -> str:
    return (ROOT / match["path"]).read_text(encoding="utf-8").rstrip("\n")


def _pages(language: str) -> list[Path]:
    return [page for page in PAGES if _blocks(page, language)]


def test_the_site_has_python_blocks() -> None:
    assert len(_pages("python")) >= 8


@pytest.mark.parametrize("page", _pages("python"), ids=lambda page: page.name)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem}"}

    async def run_page() -> None:
        for line, code in _blocks(page, "python"):
            compiled = compile(
                "\n" * (line - 1) + code, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
            )
            result = eval(compiled, namespace)  # a block with top-level await compiles to a coroutine
            if inspect.iscoroutine(result):
                await result

    anyio.run(run_page)


@pytest.mark.parametrize("page", _pages("yaml"), ids=lambda page: page.name)
def test_yaml_definitions_validate(page: Path) -> None:
    definitions = [(line, code) for line, code in _blocks(page, "yaml") if re.search(r"^kind:", code, re.MULTILINE)]
    assert definitions, f"{page.name} has YAML blocks but no definition (kind: ...)"
    for line, code in definitions:
        parse_definition(code, f"{page.name}:{line}")
