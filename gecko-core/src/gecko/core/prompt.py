"""Prompt templates with declared variables, a section composer and a registry of named versions.

Syntax: `str.format` placeholders, `{name}`, with `{{` and `}}` for literal braces. It is the
syntax every Python user already reads, the standard library parses it (no template engine to
import), and placeholders are restricted to plain identifiers, so attribute or index access
(`{user.__class__}`) is rejected and the variables a template uses are known statically.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gecko.core._sanitize import shorten
from gecko.errors import PromptError

__all__ = ("PromptComposer", "PromptRegistry", "PromptTemplate")

_FORMATTER = string.Formatter()


def _placeholders(template: str) -> tuple[str, ...]:
    """The variable names of `template`, in first-use order; raises PromptError on bad syntax."""
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise PromptError(f"template syntax error: {exc}; write literal braces as '{{{{' and '}}}}'") from None
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise PromptError(
                f"placeholder {{{field}}} must be a plain variable name; "
                "attribute, index and positional placeholders are not allowed"
            )
        if spec and ("{" in spec or "}" in spec):
            raise PromptError(f"placeholder {{{field}}} has a nested placeholder in its format spec; inline the value")
        if field not in names:
            names.append(field)
    return tuple(names)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class PromptTemplate:
    """A text with `{name}` placeholders and the variables it declares.

    Example:
        ```python
        greet = PromptTemplate("Hello {name}, you are {role}.", variables=["name", "role"])
        greet.validate()
        greet.render(name="Ann", role="admin")
        ```
    """

    __slots__ = ("defaults", "placeholders", "template", "variables")

    def __init__(
        self,
        template: str,
        variables: Sequence[str] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Parse `template`.

        Args:
            template: The text; `{name}` is a variable, `{{`/`}}` are literal braces.
            variables: The declared variable names; `None` declares exactly those the template uses.
            defaults: Values used when `render` is not given them; their names must be declared.

        Raises:
            PromptError: The template's placeholder syntax is invalid.
        """
        self.template = template
        self.placeholders = _placeholders(template)
        self.variables: tuple[str, ...] = tuple(variables) if variables is not None else self.placeholders
        self.defaults: dict[str, Any] = dict(defaults or {})

    def __repr__(self) -> str:
        return f"PromptTemplate({shorten(self.template, 60)!r}, variables={list(self.variables)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PromptTemplate):
            return NotImplemented
        return (self.template, self.variables, self.defaults) == (other.template, other.variables, other.defaults)

    def __hash__(self) -> int:
        return hash((self.template, self.variables))

    def validate(self) -> None:
        """Check the declaration against the template, before any model call.

        Raises:
            PromptError: The template uses undeclared variables (missing from `variables`), declares
                variables it never uses, or has defaults for undeclared names.
        """
        declared = set(self.variables)
        problems: list[str] = []
        missing = [name for name in self.placeholders if name not in declared]
        unused = [name for name in self.variables if name not in self.placeholders]
        stray_defaults = sorted(set(self.defaults) - declared)
        if missing:
            problems.append(f"undeclared variables used: {', '.join(missing)} (add them to variables=)")
        if unused:
            problems.append(f"declared variables never used: {', '.join(unused)} (remove them or use them)")
        if stray_defaults:
            problems.append(f"defaults for undeclared variables: {', '.join(stray_defaults)}")
        if problems:
            raise PromptError("prompt template is invalid: " + "; ".join(problems))

    def render(self, **values: Any) -> str:
        """The text with every variable replaced by `str(value)`.

        Raises:
            PromptError: A variable has no value, or a value names no declared variable.
        """
        merged = {**self.defaults, **values} if self.defaults else values
        unknown = [name for name in values if name not in self.variables]
        if unknown:
            raise PromptError(
                f"unknown prompt variables: {', '.join(unknown)}; the template declares {', '.join(self.variables)}"
            )
        missing = [name for name in self.placeholders if name not in merged]
        if missing:
            raise PromptError(f"missing values for prompt variables: {', '.join(missing)}")
        return self.template.format_map(merged)


class PromptComposer:
    """Joins named sections (system, instructions, examples, ...) into one `PromptTemplate`.

    Example:
        ```python
        prompt = (
            PromptComposer()
            .add("system", "You are {persona}.")
            .add("instructions", "Answer in {language}.", heading="Instructions")
            .examples([("2+2?", "4")])
            .build()
        )
        prompt.render(persona="a tutor", language="French")
        ```
    """

    def __init__(self, separator: str = "\n\n") -> None:
        """Start empty; rendered sections are joined with `separator`."""
        self.separator = separator
        self._sections: dict[str, tuple[str | None, PromptTemplate]] = {}

    @property
    def sections(self) -> tuple[str, ...]:
        """The section names, in order."""
        return tuple(self._sections)

    def add(self, name: str, template: str | PromptTemplate, *, heading: str | None = None) -> PromptComposer:
        """Append section `name` (its text is a template) with an optional heading line; returns self.

        Raises:
            PromptError: A section with this name already exists.
        """
        if name in self._sections:
            raise PromptError(f"section {name!r} already exists; use another name")
        self._sections[name] = (heading, template if isinstance(template, PromptTemplate) else PromptTemplate(template))
        return self

    def examples(
        self, examples: Iterable[str | tuple[str, str]], *, name: str = "examples", heading: str | None = "Examples"
    ) -> PromptComposer:
        """Append literal examples (braces kept as written): a string each, or `(input, output)` pairs."""
        blocks: list[str] = []
        for index, example in enumerate(examples, start=1):
            if isinstance(example, tuple):
                given, expected = example
                blocks.append(f"Example {index}:\nInput: {given}\nOutput: {expected}")
            else:
                blocks.append(f"Example {index}:\n{example}")
        return self.add(name, PromptTemplate(_escape("\n\n".join(blocks))), heading=heading)

    def build(self) -> PromptTemplate:
        """One template of every section; its variables are the union of the sections' variables."""
        parts: list[str] = []
        variables: list[str] = []
        defaults: dict[str, Any] = {}
        for heading, template in self._sections.values():
            text = template.template if heading is None else f"{_escape(heading)}\n{template.template}"
            parts.append(text)
            variables.extend(name for name in template.variables if name not in variables)
            defaults.update(template.defaults)
        return PromptTemplate(_escape(self.separator).join(parts), variables, defaults=defaults)

    def validate(self) -> None:
        """Validate every section.

        Raises:
            PromptError: A section is invalid; the message names it.
        """
        for name, (_, template) in self._sections.items():
            try:
                template.validate()
            except PromptError as exc:
                raise PromptError(f"section {name!r}: {exc}") from None

    def render(self, **values: Any) -> str:
        """The composed prompt; see `PromptTemplate.render`."""
        return self.build().render(**values)


class PromptRegistry:
    """Named prompt templates, each with immutable versions; the latest registered is the default."""

    def __init__(self) -> None:
        self._prompts: dict[str, dict[str, PromptTemplate]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The registered prompt names."""
        return tuple(self._prompts)

    def versions(self, name: str) -> tuple[str, ...]:
        """The versions of `name`, oldest first.

        Raises:
            PromptError: No prompt has this name.
        """
        return tuple(self._versions(name))

    def _versions(self, name: str) -> dict[str, PromptTemplate]:
        found = self._prompts.get(name)
        if found is None:
            known = ", ".join(self._prompts) or "(none)"
            raise PromptError(f"no prompt named {name!r}; registered prompts: {known}")
        return found

    def register(self, name: str, template: str | PromptTemplate, version: str | int | None = None) -> PromptTemplate:
        """Add a version of prompt `name` (validated first) and return its template.

        Args:
            name: The prompt's name.
            template: The text or template.
            version: The version label; `None` takes the next number ("1", "2", ...).

        Raises:
            PromptError: The template is invalid, or this version exists with a different template.
        """
        prompt = template if isinstance(template, PromptTemplate) else PromptTemplate(template)
        prompt.validate()
        versions = self._prompts.setdefault(name, {})
        if version is not None:
            label = str(version)
        else:
            number = len(versions) + 1
            while str(number) in versions:
                number += 1
            label = str(number)
        existing = versions.get(label)
        if existing is not None:
            if existing == prompt:
                return existing
            raise PromptError(
                f"prompt {name!r} version {label!r} already exists; versions are immutable, register a new one"
            )
        versions[label] = prompt
        return prompt

    def get(self, name: str, version: str | int | None = None) -> PromptTemplate:
        """Version `version` of prompt `name`, or its most recently registered version.

        Raises:
            PromptError: No such prompt or version.
        """
        versions = self._versions(name)
        if version is None:
            return next(reversed(versions.values()))
        found = versions.get(str(version))
        if found is None:
            raise PromptError(f"prompt {name!r} has no version {version!r}; versions: {', '.join(versions)}")
        return found
