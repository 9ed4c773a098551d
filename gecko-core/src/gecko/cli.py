"""The `gecko` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from gecko.errors import GeckoError
from gecko.plugins._loader import PluginRecord

__all__ = ("main",)


def _plugin_records() -> list[tuple[str, PluginRecord]]:
    from gecko.plugins.manager import PluginManager
    from gecko.plugins.models import model_registry
    from gecko.plugins.storage import storage_registry
    from gecko.plugins.vector import vector_registry

    rows: list[tuple[str, PluginRecord]] = []
    rows += [("storage", record) for record in storage_registry.records()]
    rows += [("vector", record) for record in vector_registry.records()]
    rows += [("model", record) for record in model_registry.records()]
    rows += [("hook", record) for record in PluginManager().load_plugins()]
    return rows


def _plugins_command(arguments: argparse.Namespace) -> int:
    try:
        rows = _plugin_records()
    except GeckoError as exc:  # strict mode (GECKO_STRICT_PLUGINS=1) raises the first plugin error
        print(f"gecko plugins: {exc}", file=sys.stderr)
        return 1
    if arguments.json:
        payload = [
            {
                "kind": kind,
                "name": r.name,
                "target": r.target,
                "distribution": r.distribution,
                "version": r.version,
                "status": r.status,
                "error": r.error,
                "import_ms": None if r.import_seconds is None else round(r.import_seconds * 1000, 2),
            }
            for kind, r in rows
        ]
        print(json.dumps(payload, indent=2))
        return 0
    header = ("KIND", "NAME", "DISTRIBUTION", "VERSION", "STATUS", "IMPORT MS", "ERROR")
    table = [header] + [
        (
            kind,
            r.name,
            r.distribution,
            r.version,
            r.status,
            "" if r.import_seconds is None else f"{r.import_seconds * 1000:.1f}",
            r.error or "",
        )
        for kind, r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _workflow_show_command(arguments: argparse.Namespace) -> int:
    from importlib import import_module

    from gecko.compose.workflow import Workflow
    from gecko.errors import WorkflowDefinitionError

    module_name, _, attribute = arguments.target.partition(":")
    if not module_name or not attribute:
        print(f"gecko workflow show: expected module:attribute, got {arguments.target!r}", file=sys.stderr)
        return 2
    try:
        found: object = getattr(import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        print(f"gecko workflow show: cannot load {arguments.target!r}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(found, Workflow) and callable(found):
        found = found()
    if not isinstance(found, Workflow):
        print(f"gecko workflow show: {arguments.target!r} is {type(found).__name__}, not a Workflow", file=sys.stderr)
        return 2
    try:
        print(found.to_mermaid())
        print()
        for depth, layer in enumerate(found.layers):
            print(f"%% layer {depth}: {', '.join(layer)}")
    except WorkflowDefinitionError as exc:
        print(f"gecko workflow show: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `gecko` command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="gecko", description="Gecko agent framework tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    plugins = commands.add_parser("plugins", help="list installed plugins with their status")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plugins.set_defaults(handler=_plugins_command)
    workflow = commands.add_parser("workflow", help="inspect workflows")
    workflow_commands = workflow.add_subparsers(dest="workflow_command", required=True)
    show = workflow_commands.add_parser("show", help="print a workflow's graph as Mermaid and its layers")
    show.add_argument("target", help="module:attribute naming a Workflow (or a function returning one)")
    show.set_defaults(handler=_workflow_show_command)
    arguments = parser.parse_args(argv)
    status: int = arguments.handler(arguments)
    return status


if __name__ == "__main__":
    sys.exit(main())
