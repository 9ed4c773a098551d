"""Gecko definitions in YAML: agents, workflows and teams as data, checked against a published schema.

```python
from gecko_config_yaml import build, load_definition

async with build(load_definition("flow.yaml")) as workflow:
    result = await workflow.execute("input", session_id="run-1")
```

Files are read by a safe loader (plain data only: a tag such as `!!python/object` is refused
with its line) and validated by the pydantic models in `gecko_config_yaml.models`, whose JSON
Schema is `gecko_config_yaml/definition.schema.json` (`gecko_config_yaml.schema`). Code is named by import path
(`module:attribute`). `gecko run FILE.yaml` and `gecko workflow show FILE.yaml` use this package.
"""

from __future__ import annotations

from gecko_config_yaml._build import DefinitionSource, Runnable, build, load_definition, parse_definition
from gecko_config_yaml._dump import definition_from_workflow, dump_definition
from gecko_config_yaml._version import __version__
from gecko_config_yaml.errors import DefinitionError

__all__ = (
    "DefinitionError",
    "DefinitionSource",
    "Runnable",
    "__version__",
    "build",
    "definition_from_workflow",
    "dump_definition",
    "load_definition",
    "parse_definition",
)
