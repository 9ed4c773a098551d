"""The `gecko` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

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


_YAML_SUFFIXES = (".yaml", ".yml")


def _yaml_cli(command: str) -> ModuleType | None:
    """The YAML plugin's command module, imported only when a command needs it; None (and a hint) if absent."""
    from importlib import import_module

    try:
        return import_module("gecko_config_yaml.cli")
    except ModuleNotFoundError as exc:
        if exc.name not in ("gecko_config_yaml", "gecko_config_yaml.cli"):
            raise  # the plugin is there but something it imports is not: show that
        print(f"{command}: YAML definitions need the plugin: pip install gecko-ai-config-yaml", file=sys.stderr)
        return None


def _run_command(arguments: argparse.Namespace) -> int:
    plugin = _yaml_cli("gecko run")
    if plugin is None:
        return 2
    value = arguments.input
    if arguments.input_json is not None:
        try:
            value = json.loads(arguments.input_json)
            json.dumps(value, allow_nan=False)  # NaN and Infinity are not JSON
        except (ValueError, RecursionError) as exc:
            print(f"gecko run: --input-json is not JSON: {exc}", file=sys.stderr)
            return 2
    request = plugin.RunRequest(Path(arguments.file), value, arguments.session, arguments.resume)
    status: int = plugin.run_command(request)
    return status


def _workflow_show_command(arguments: argparse.Namespace) -> int:
    from importlib import import_module

    if arguments.target.endswith(_YAML_SUFFIXES):
        plugin = _yaml_cli("gecko workflow show")
        if plugin is None:
            return 2
        status: int = plugin.show_command(Path(arguments.target))
        return status

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
    show.add_argument(
        "target", help="module:attribute naming a Workflow (or a function returning one), or a FILE.yaml definition"
    )
    show.set_defaults(handler=_workflow_show_command)
    run = commands.add_parser(
        "run",
        help="run an agent, workflow or team defined in YAML (needs gecko-ai-config-yaml)",
        description="Progress is printed as text on a terminal and as JSON lines when piped; the last line is "
        "the result. Piped stdout holds only those lines: output of the run's own code goes to stderr. "
        "A paused run exits 0 with status 'paused'; continue it with --session ID --resume.",
    )
    run.add_argument("file", help="the definition, FILE.yaml")
    given = run.add_mutually_exclusive_group()
    given.add_argument("--input", help="the run's input as text (with --resume: the value interrupt() returns)")
    given.add_argument("--input-json", metavar="JSON", help="the input as JSON")
    run.add_argument("--session", help="session id: names the run's checkpoints (workflows) or conversation (agents)")
    run.add_argument("--resume", action="store_true", help="continue the paused or interrupted run of --session")
    run.set_defaults(handler=_run_command)
    arguments = parser.parse_args(argv)
    status: int = arguments.handler(arguments)
    return status


if __name__ == "__main__":
    sys.exit(main())
