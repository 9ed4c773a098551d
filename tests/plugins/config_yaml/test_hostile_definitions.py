"""Hostile definition files: whatever a file holds, reading and building it ends in a `DefinitionError`
naming the problem, or in a working object; never a raw Python, YAML or pydantic exception."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from gecko_config_yaml import DefinitionError, build, load_definition, parse_definition
from gecko_config_yaml._build import MAX_DEFINITION_SIZE

from gecko import Agent

HOSTILE_MODULE = '''
"""Code a definition may name: values that are not what their field needs, failing attributes."""

import sys

NUMBER = 3


class _Failing:
    @property
    def attribute(self):
        raise RuntimeError("the property failed")


failing = _Failing()


def node(ctx):
    return ctx.input


def mapper(raw, index):
    return raw


async def merge(current, contribution):
    return contribution
'''

EXITING_MODULE = "import sys\nsys.exit(3)\n"

FLOW = {
    "kind": "workflow",
    "name": "w",
    "entry": "a",
    "nodes": {"a": {"call": "hostile_steps:node"}, "b": {"call": "hostile_steps:node", "timeout": 1.5}},
    "edges": [{"from": "a", "to": "b", "when": "hostile_steps:node"}],
    "max_steps": 5,
    "enable_parallel": True,
    "merge_rules": {"k": "append"},
}
AGENT = {
    "kind": "agent",
    "model": {"spec": "scripted:demo", "settings": {"replies": ["hi"]}},
    "tools": ["hostile_steps:node"],
    "memory": {"type": "token", "max_tokens": 100},
    "max_turns": 2,
}
TEAM = {"kind": "team", "members": ["hostile_steps:node"], "input_mapper": "hostile_steps:mapper"}

# One value of every YAML type, and values that are the right type but unusable.
WRONG_VALUES: tuple[object, ...] = (None, True, 0, -1, 1.5, float("nan"), "", "x", [], ["x"], {}, {"x": 1})


@pytest.fixture
def hostile_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "hostile_steps.py").write_text(HOSTILE_MODULE)
    (tmp_path / "exiting_steps.py").write_text(EXITING_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


async def _outcome(text: str) -> str:
    """`built` or the `DefinitionError`'s text; any other exception fails the test."""
    try:
        async with build(parse_definition(text, "h.yaml"), open_storage=False):
            return "built"
    except DefinitionError as exc:
        error = exc
    assert error.file == "h.yaml"
    assert error.reason, "a definition error names the problem"
    return str(error)


def _leaves(data: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every path of `data`, containers included."""
    yield path
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield from _leaves(value, (*path, key))


def _replaced(data: Any, path: tuple[str | int, ...], value: object) -> Any:
    changed = copy.deepcopy(data)
    if not path:
        return value
    parent = changed
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return changed


def _mutations() -> Iterator[Any]:
    for definition in (FLOW, AGENT, TEAM):
        for path in _leaves(definition):
            for value in WRONG_VALUES:
                yield pytest.param(_replaced(definition, path, value), id=f"{definition['kind']}:{path}={value!r}")


@pytest.mark.parametrize("data", list(_mutations()))
async def test_a_wrong_value_anywhere_is_a_definition_error_or_builds(hostile_dir: Path, data: Any) -> None:
    await _outcome(yaml.safe_dump(data))


@pytest.mark.parametrize("key", ["colour", "Nodes", "", "kind "])
@pytest.mark.parametrize("definition", [FLOW, AGENT, TEAM], ids=["workflow", "agent", "team"])
async def test_unknown_keys_are_named(hostile_dir: Path, definition: dict[str, Any], key: str) -> None:
    assert f"{key}: Extra inputs are not permitted" in await _outcome(yaml.safe_dump({**definition, key: 1}))


FLOW_TEXT = yaml.safe_dump(FLOW, sort_keys=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML that PyYAML's constructor (not its parser) refuses
        ("base: &b [1, 2]\nkind:\n  <<: *b\n", "h.yaml:3: kind: not valid YAML: expected a mapping for merging"),
        ("kind:\n  <<: 3\n", "h.yaml:2: kind: not valid YAML: expected a mapping or list of mappings"),
        # values no field can take
        (FLOW_TEXT + "history_limit: " + "9" * 5000 + "\n", "history_limit: not a usable number"),
        (FLOW_TEXT.replace("name: w", 'name: "\\ud800"'), "h.yaml:2: name: text holds a lone surrogate U+D800"),
        (FLOW_TEXT.replace("name: w", "name: 2020-01-01"), "name: tag 'tag:yaml.org,2002:timestamp' is not allowed"),
        (FLOW_TEXT.replace("name: w", "name: !!binary aGk="), "name: tag 'tag:yaml.org,2002:binary' is not allowed"),
        # types YAML gives that pydantic would have coerced
        (FLOW_TEXT.replace("max_steps: 5", "max_steps: '5'"), "max_steps: Input should be a valid integer"),
        (FLOW_TEXT.replace("max_steps: 5", "max_steps: true"), "max_steps: Input should be a valid integer"),
        (
            FLOW_TEXT.replace("enable_parallel: true", "enable_parallel: 1"),
            "enable_parallel: Input should be a valid boolean",
        ),
        (
            FLOW_TEXT.replace("enable_parallel: true", "enable_parallel: 'yes'"),
            "enable_parallel: Input should be a valid boolean",
        ),
        # layout
        ("kind: workflow\n\tname: w\n", "h.yaml:2: not valid YAML: found character '\\t'"),
        (FLOW_TEXT + "---\n" + FLOW_TEXT, "not valid YAML: but found another document"),
        ("- kind: workflow\n", "h.yaml:1: Input should be a valid dictionary"),
        ("kind: workflow\n", "h.yaml:1: name: Field required"),
        ("a: &a [*a]\n", "nested more than 64 levels deep"),
        # the graph
        (FLOW_TEXT.replace("entry: a", "entry: z"), "h.yaml:3: entry: no node named 'z'"),
        (FLOW_TEXT.replace("to: b", "to: z"), "edges[0].to: no node named 'z'"),
        (FLOW_TEXT, "built"),
        (FLOW_TEXT.replace("to: b", "to: a"), "the graph has a cycle a -> a"),
        # import paths
        (
            FLOW_TEXT.replace("call: hostile_steps:node", "call: no_such_module_zz:node", 1),
            "cannot import 'no_such_module_zz'",
        ),
        (FLOW_TEXT.replace("hostile_steps:node", "hostile_steps:missing", 1), "has no attribute path 'missing'"),
        (FLOW_TEXT.replace("hostile_steps:node", "hostile_steps:NUMBER", 1), "a node must be a function"),
        (
            FLOW_TEXT.replace("hostile_steps:node", "hostile_steps:failing.attribute", 1),
            "reading 'attribute' raised RuntimeError",
        ),
        (
            FLOW_TEXT.replace("hostile_steps:node", "exiting_steps:node", 1),
            "cannot import 'exiting_steps': SystemExit: 3",
        ),
        (
            FLOW_TEXT.replace("when: hostile_steps:node", "when: hostile_steps:NUMBER"),
            "edges[0].when: 'hostile_steps:NUMBER' is int, not callable",
        ),
        (
            FLOW_TEXT.replace("k: append", "k: hostile_steps:NUMBER"),
            "merge_rules.k: 'hostile_steps:NUMBER' is int, not callable",
        ),
        (
            FLOW_TEXT.replace("k: append", "k: hostile_steps:merge"),
            "h.yaml:17: merge_rules.k: merge rule for state key 'k' is async",
        ),
        ("kind: team\nmembers: [hostile_steps:NUMBER]\n", "team member 0 (int) is not runnable"),
        (
            "kind: team\nmembers: [hostile_steps:node]\ninput_mapper: hostile_steps:NUMBER\n",
            "input_mapper: 'hostile_steps:NUMBER' is int",
        ),
        (
            "kind: agent\nmodel: {spec: 'scripted:d', settings: {replies: [x]}}\ntools: ['builtins:dict']\n",
            "tool 'dict'",
        ),
        (
            "kind: agent\nmodel: {spec: 'scripted:d', settings: {replies: [x]}}\ntools: ['builtins:print']\n",
            "tool 'print'",
        ),
        (
            "kind: agent\nmodel: {spec: 'scripted:d', settings: {replies: [x], '1': 2}}\n",
            "unexpected keyword argument '1'",
        ),
        ("kind: agent\nmodel: 'no-provider'\n", "model spec 'no-provider' must look like 'provider:model'"),
        (
            "kind: agent\nmodel: {spec: 'scripted:d', settings: {replies: [x]}}\n"
            "system_prompt: {registry: 'hostile_steps:NUMBER', name: n}\n",
            "system_prompt.registry: 'hostile_steps:NUMBER' is not a PromptRegistry",
        ),
    ],
)
async def test_hostile_files_name_their_problem(hostile_dir: Path, text: str, expected: str) -> None:
    assert expected in await _outcome(text)


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("nope://x", "h.yaml:3: storage: no installed plugin provides storage scheme 'nope'"),
        ("sqlite://", "h.yaml:3: storage: sqlite URL 'sqlite://' names no database file"),
        ("chroma://./kb", "h.yaml:3: storage: "),
        ("no url", "h.yaml:3: storage: "),
    ],
)
async def test_an_agent_storage_that_cannot_open_is_a_definition_error_when_built(
    hostile_dir: Path, storage: str, expected: str
) -> None:
    # Before, the agent was built and its first run failed, with no file, line or field.
    text = f"kind: agent\nmodel: {{spec: 'scripted:d', settings: {{replies: [x]}}}}\nstorage: '{storage}'\n"
    with pytest.raises(DefinitionError) as caught:
        async with build(parse_definition(text, "h.yaml")):
            pass
    assert str(caught.value).startswith(expected)


async def test_an_agent_storage_opened_when_built_keeps_its_sessions(hostile_dir: Path) -> None:
    url = f"sqlite:///{hostile_dir / 'agent.db'}"
    text = f"kind: agent\nmodel: {{spec: 'scripted:d', settings: {{replies: [one, two]}}}}\nstorage: '{url}'\n"
    async with build(parse_definition(text, "h.yaml")) as agent:
        assert isinstance(agent, Agent)
        await agent.run("first", session_id="s")
        second = await agent.run("second", session_id="s")
    assert [message.text for message in second.messages] == ["first", "one", "second", "two"]
    assert (hostile_dir / "agent.db").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"kind: workflow\nname: \xff\xfe\n", "h.yaml:2: not UTF-8: byte 0xff"),
        (b"\xef\xbb\xbf" + FLOW_TEXT.encode(), "built"),  # a UTF-8 byte order mark is fine
        (FLOW_TEXT.encode("utf-16"), "not UTF-8"),
        (b"", "the file is empty"),
        (b"%PDF-1.7\n\x00\x01\x02", "h.yaml:2: not valid YAML: character U+0000 is not allowed"),
    ],
)
async def test_hostile_bytes_name_their_problem(hostile_dir: Path, content: bytes, expected: str) -> None:
    (hostile_dir / "h.yaml").write_bytes(content)
    try:
        async with build(load_definition(hostile_dir / "h.yaml"), open_storage=False):
            outcome = "built"
    except DefinitionError as exc:
        outcome = str(exc)
    assert expected in outcome.replace(str(hostile_dir / "h.yaml"), "h.yaml")


def test_a_folder_is_not_a_definition(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read the file"):
        load_definition(tmp_path)


@pytest.mark.parametrize("name", ["", "flow/a"])
async def test_a_workflow_name_that_cannot_name_checkpoint_keys_is_a_definition_error(
    hostile_dir: Path, name: str
) -> None:
    assert "a workflow name must be non-empty text without '/'" in await _outcome(
        yaml.safe_dump({**FLOW, "name": name})
    )


def test_a_definition_longer_than_the_bound_is_refused_before_it_is_read_as_yaml(tmp_path: Path) -> None:
    text = yaml.safe_dump(FLOW) + "#" + "x" * MAX_DEFINITION_SIZE + "\n"
    with pytest.raises(DefinitionError, match=r"h\.yaml: longer than 4 MiB"):
        parse_definition(text, "h.yaml")
    (tmp_path / "big.yaml").write_text(text)
    with pytest.raises(DefinitionError, match=r"big\.yaml: longer than 4 MiB"):
        load_definition(tmp_path / "big.yaml")
    assert parse_definition(yaml.safe_dump(FLOW) + "#" + "x" * 100_000, "h.yaml")
