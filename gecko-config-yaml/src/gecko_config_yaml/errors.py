"""The one error a definition can fail with."""

from __future__ import annotations

from gecko.errors import ConfigurationError

__all__ = ("DefinitionError",)


class DefinitionError(ConfigurationError):
    """A definition file is unreadable, unsafe or invalid.

    Attributes:
        file: The file (or `<string>`) the definition came from.
        line: The 1-based line of the offending entry, when known.
        field: The dotted path of the offending field (`nodes.fetch.call`), or "" for the whole file.
        reason: What is wrong, without the location.
    """

    def __init__(self, file: str, line: int | None, field: str, reason: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.reason = reason
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")
