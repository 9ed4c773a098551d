"""Reading YAML as plain data, with the line of every entry, and nothing constructed from tags."""

from __future__ import annotations

from typing import Any

import yaml

from gecko_config_yaml.errors import DefinitionError

__all__ = ("Lines", "Path", "SafeLineLoader", "field_name", "line_of")

Path = tuple[str | int, ...]
Lines = dict[Path, int]

_CORE = "tag:yaml.org,2002:"
# Data tags only: a tag that names a Python object (`!!python/object`, `!!python/name`, ...) or
# anything else is refused before any value is built, whatever the loader would have done with it.
_SCALARS = frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null"))
_MAX_NODES = 200_000  # anchors and aliases can expand a small file exponentially
_MAX_DEPTH = 64


class SafeLineLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that returns plain data (mappings, lists, scalars) with the line of each entry.

    Only the YAML core data tags are accepted; any other tag is a `DefinitionError` naming its
    line. Keys must be strings and unique.
    """

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        try:
            super().__init__(text)
        except yaml.reader.ReaderError as exc:  # a control character (NUL, a lone surrogate, ...)
            line = text.count("\n", 0, exc.position) + 1
            reason = f"not valid YAML: character U+{exc.character:04X} is not allowed"
            raise DefinitionError(source, line, "", reason) from None
        self._budget = _MAX_NODES

    def load_with_lines(self) -> tuple[Any, Lines]:
        """The document as plain data, and `{path: line}` for the document and every entry in it."""
        try:
            node = self.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise DefinitionError(
                self.source, None if mark is None else mark.line + 1, "", f"not valid YAML: {exc.problem or exc}"
            ) from None
        except RecursionError:
            raise DefinitionError(self.source, None, "", "not valid YAML: nested too deeply") from None
        finally:
            self.dispose()
        lines: Lines = {}
        if node is None:
            raise DefinitionError(self.source, None, "", "the file is empty")
        return self._data(node, (), lines), lines

    def _data(self, node: yaml.Node, path: Path, lines: Lines) -> Any:
        self._budget -= 1
        line = node.start_mark.line + 1
        if self._budget < 0:
            raise DefinitionError(self.source, line, field_name(path), "too many values (aliases expanding?)")
        if len(path) > _MAX_DEPTH:
            raise DefinitionError(self.source, line, field_name(path), f"nested more than {_MAX_DEPTH} levels deep")
        lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode) and node.tag == _CORE + "map":
            return self._mapping(node, path, line, lines)
        if isinstance(node, yaml.SequenceNode) and node.tag == _CORE + "seq":
            return [self._data(item, (*path, index), lines) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.tag in _SCALARS:
            return self._scalar(node, path, line)
        raise DefinitionError(
            self.source,
            line,
            field_name(path),
            f"tag {node.tag!r} is not allowed: a definition is data only; name code by import path (module:attribute)",
        )

    def _mapping(self, node: yaml.MappingNode, path: Path, line: int, lines: Lines) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        merge: yaml.Node | None = None  # the value of a `<<` key
        for key_node, value_node in node.value:
            if key_node.tag == _CORE + "merge":
                if merge is not None:
                    raise DefinitionError(
                        self.source, key_node.start_mark.line + 1, field_name((*path, "<<")), "duplicate key"
                    )
                merge = value_node
                continue
            # A plain key is its text: a node named `no`, `on` or `1` keeps its name (YAML 1.1
            # would make it a bool or an int).
            plain = isinstance(key_node, yaml.ScalarNode) and key_node.tag in _SCALARS and not key_node.style
            key = key_node.value if plain else self._data(key_node, path, {})
            if not isinstance(key, str):
                raise DefinitionError(
                    self.source, key_node.start_mark.line + 1, field_name(path), f"keys must be text, got {key!r}"
                )
            if key in mapping:
                raise DefinitionError(
                    self.source, key_node.start_mark.line + 1, field_name((*path, key)), "duplicate key"
                )
            entry = (*path, key)
            lines[entry] = key_node.start_mark.line + 1
            mapping[key] = self._data(value_node, entry, lines)
        if merge is None:
            return mapping
        return {**self._merged(merge, path, line, lines, mapping), **mapping}

    def _merged(self, node: yaml.Node, path: Path, line: int, lines: Lines, written: dict[str, Any]) -> dict[str, Any]:
        """The entries a `<<: *anchor` (or `<<: [*a, *b]`) key merges in, the first source winning;
        the lines of those not `written` beside it are recorded.

        Sources are read like any value (counted against the bound), never flattened by PyYAML, whose
        merging copied entries before anything counted them.
        """
        if isinstance(node, yaml.SequenceNode) and node.tag == _CORE + "seq":
            sources = node.value
            if not all(isinstance(source, yaml.MappingNode) for source in sources):
                raise DefinitionError(
                    self.source, line, field_name(path), "not valid YAML: expected a mapping for merging"
                )
        elif isinstance(node, yaml.MappingNode):
            sources = [node]
        else:
            reason = "not valid YAML: expected a mapping or list of mappings for merging"
            raise DefinitionError(self.source, line, field_name(path), reason)
        merged: dict[str, Any] = {}
        for source in sources:
            source_lines: Lines = {}
            data = self._data(source, path, source_lines)
            new = [key for key in data if key not in merged]
            merged.update((key, data[key]) for key in new)
            taken = set(new).difference(written)
            lines.update(
                (entry, entry_line)
                for entry, entry_line in source_lines.items()
                if len(entry) > len(path) and entry[len(path)] in taken
            )
        return merged

    def _scalar(self, node: yaml.ScalarNode, path: Path, line: int) -> Any:
        try:
            value = self.construct_object(node, deep=True)
        except ValueError as exc:  # an integer past Python's digit limit
            raise DefinitionError(self.source, line, field_name(path), f"not a usable number: {exc}") from None
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:  # a `"\ud800"` escape: no file, store or model can take it
                reason = f"text holds a lone surrogate U+{ord(value[exc.start]):04X}"
                raise DefinitionError(self.source, line, field_name(path), reason) from None
        return value


def field_name(path: Path) -> str:
    """`nodes.fetch.call`, `edges[2].when`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def line_of(lines: Lines, path: Path) -> int | None:
    """The line of `path`, or of its nearest enclosing entry."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
