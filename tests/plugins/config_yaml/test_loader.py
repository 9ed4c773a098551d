"""The safe loader: plain data with lines; every non-data tag, duplicate key or bomb is refused at its line."""

from __future__ import annotations

import pytest
from gecko_config_yaml import DefinitionError, parse_definition
from gecko_config_yaml._loader import SafeLineLoader


def _load(text: str) -> tuple[object, dict[tuple[str | int, ...], int]]:
    return SafeLineLoader(text, "t.yaml").load_with_lines()


def test_entries_carry_their_lines() -> None:
    data, lines = _load("a: 1\nb:\n  - x\n  - {c: true}\n")
    assert data == {"a": 1, "b": ["x", {"c": True}]}
    assert lines[("a",)] == 1
    assert lines[("b", 0)] == 3
    assert lines[("b", 1, "c")] == 4


@pytest.mark.parametrize(
    ("text", "line", "tag"),
    [
        ("a: 1\nb: !!python/object:os.system {}\n", 2, "python/object:os.system"),
        ("a: !!python/name:os.system ''\n", 1, "python/name:os.system"),
        ("a:\n  - ok\n  - !!python/object/new:builtins.dict []\n", 3, "python/object/new:builtins.dict"),
        ("a: !custom 3\n", 1, "!custom"),
        ("a: !!binary aGVsbG8=\n", 1, "binary"),
    ],
)
def test_non_data_tags_are_refused_with_their_line(text: str, line: int, tag: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        _load(text)
    assert caught.value.line == line
    assert tag in str(caught.value)
    assert "not allowed" in caught.value.reason


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(DefinitionError, match=r"t\.yaml:3: a\.b: duplicate key"):
        _load("a:\n  b: 1\n  b: 2\n")


def test_keys_must_be_text() -> None:
    with pytest.raises(DefinitionError, match=r"t\.yaml:1: .*keys must be text, got \['a'\]"):
        _load("? [a]\n: x\n")


def test_merge_keys_and_aliases_are_data() -> None:
    data, _ = _load("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert data == {"base": {"x": 1}, "other": {"x": 1, "y": 2}}


@pytest.mark.parametrize(
    ("text", "other", "line"),
    [
        ("base: &b {x: 1, z: 3}\nother: {<<: *b, x: 2}\n", {"x": 2, "z": 3}, 2),  # a key beside `<<` wins
        ("base: &b {x: 1}\nother: {x: 0, <<: *b}\n", {"x": 0}, 2),  # wherever it is written
        ("base: &b {x: 1}\nc: &c {x: 2, y: 2}\nother: {<<: [*b, *c]}\n", {"x": 1, "y": 2}, 1),  # the first source wins
        ("base: &b {x: {<<: {y: 1}, z: 2}}\nother: {<<: *b}\n", {"x": {"y": 1, "z": 2}}, 1),  # merges in a source
    ],
)
def test_merged_keys_are_overridden_as_yaml_says(text: str, other: dict[str, object], line: int) -> None:
    data, lines = _load(text)
    assert isinstance(data, dict)
    assert data["other"] == other
    assert lines[("other", "x")] == line  # where the value that won is written


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("b: &b {x: 1}\nother: {<<: *b, <<: *b}\n", r"t\.yaml:2: other\.<<: duplicate key"),
        ("b: &b [1, 2]\nother:\n  <<: *b\n", r"t\.yaml:3: other: not valid YAML: expected a mapping for merging"),
        ("other:\n  <<: 3\n", r"t\.yaml:2: other: not valid YAML: expected a mapping or list of mappings"),
        (
            "other: {<<: !!python/object:os.system {}}\n",
            r"t\.yaml:1: other: tag .*python/object:os\.system.* not allowed",
        ),
    ],
)
def test_merge_keys_that_cannot_merge_are_refused(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        _load(text)


def test_merge_bombs_are_bounded_whatever_pyyaml_merges() -> None:
    # Each level merges the one below twice: PyYAML before 6.0.4 doubled the merged entries at
    # every level, before any value was counted.
    inner = "&a0 {k: 1}"
    for level in range(1, 60):
        inner = f"&a{level} {{<<: [{inner}, *a{level - 1}]}}"
    with pytest.raises(DefinitionError, match="too many values"):
        _load(f"x: {{<<: [{inner}, *a59]}}\n")


def test_alias_bombs_are_bounded() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 7)]
    with pytest.raises(DefinitionError, match="too many values"):
        _load("\n".join(levels) + "\n")


def test_invalid_yaml_names_its_line() -> None:
    with pytest.raises(DefinitionError) as caught:
        _load("a: 1\nb: [unclosed\n")
    assert caught.value.file == "t.yaml"
    assert caught.value.line is not None
    assert "not valid YAML" in str(caught.value)


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(DefinitionError, match="the file is empty"):
        parse_definition("# nothing\n", "t.yaml")


def test_plain_keys_keep_their_text_whatever_yaml_1_1_reads() -> None:
    data, _ = _load("no: 1\non: 2\n1: 3\n~: 4\n")
    assert data == {"no": 1, "on": 2, "1": 3, "~": 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "[" * 100 + "]" * 100 + "\n", r"t\.yaml:1: a(\[0\])+: nested more than 64 levels deep"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", r"t\.yaml: not valid YAML: nested too deeply"),
        ("a: 1\nb: x\x00\n", r"t\.yaml:2: not valid YAML: character U\+0000 is not allowed"),
    ],
)
def test_deep_nesting_and_control_characters_are_refused(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        _load(text)


def test_a_boolean_where_text_belongs_says_to_quote_it() -> None:
    text = "kind: workflow\nname: w\nentry: no\nnodes:\n  no: {call: os:getcwd}\n"
    with pytest.raises(DefinitionError, match=r"<string>:3: entry: .*YAML read it as False .*need quotes"):
        parse_definition(text)
    assert parse_definition(text.replace("entry: no", "entry: 'no'")).definition.entry == "no"
