"""The published JSON Schema of definition files; `python -m gecko_config_yaml.schema` rewrites it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gecko_config_yaml.models import DefinitionFile

__all__ = ("SCHEMA_PATH", "definition_schema")

SCHEMA_PATH = Path(__file__).with_name("definition.schema.json")
"""Point editors at it: `# yaml-language-server: $schema=<this path>` on a definition's first line."""


def definition_schema() -> dict[str, Any]:
    """The JSON Schema of a definition file, generated from `gecko_config_yaml.models`."""
    schema = DefinitionFile.model_json_schema()
    return {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Gecko definition"}


def render() -> str:
    """The schema file's exact text."""
    return json.dumps(definition_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
