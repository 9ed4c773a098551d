"""Attacks on the argument policies, by class: every spelling of a path escape, an SSRF target, a shell
metacharacter or a storage URL is refused before the tool runs, with an `ArgumentViolation`.

Each case is run through an agent whose tool records what it received; a refused call never reaches it.
The property tests draw the spellings at random, so a held-out spelling of a known class is covered too.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Any

import anyio
import pytest
from gecko_guardrails import ArgumentViolation, Guardrails
from gecko_guardrails.arguments import _METADATA_NAMES, host_matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gecko.core.agent import Agent
from gecko.core.events import EventBus, FinalOutput
from gecko.core.toolbox import Tool
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import Event, Role, ToolCall


async def call_tool(
    guard: Guardrails, value: Any, *, stream: bool = False, events: list[Event] | None = None
) -> tuple[list[Any], str]:
    """One agent run (streamed or not; observed when `events` collects what its bus publishes) whose model calls
    `probe(value=value)`: what the tool received, and what the model read back."""
    received: list[Any] = []

    async def probe(value: Any) -> str:
        received.append(value)
        return "ran"

    model = ScriptedModel(
        [tool_calls_reply(ToolCall(id="c1", name="probe", arguments=json.dumps({"value": value}))), "finished"]
    )
    bus = EventBus()
    if events is not None:
        bus.subscribe(events.append)
    agent = Agent(model, tools=[Tool(probe, name="probe", description="probe a value")], event_bus=bus)
    if stream:
        [output] = [event.output async for event in agent.stream("go") if isinstance(event, FinalOutput)]
    else:
        output = await agent.run("go")
    observation = output.messages[-2]
    assert (observation.role, observation.tool_call_id) == (Role.TOOL, "c1")
    return received, observation.text


async def assert_refused(guard: Guardrails, value: Any, reason: str = "") -> None:
    """The call is refused before the tool runs, with an `ArgumentViolation` whose message holds `reason`."""
    received, text = await call_tool(guard, value)
    assert received == [], f"the tool ran with {value!r}"
    assert "blocked by a guardrail" in text
    assert reason in text
    with pytest.raises(ArgumentViolation, match=re.escape(reason) if reason else None):
        await guard.check_arguments(ToolCall(id="c2", name="probe", arguments=json.dumps({"value": value})), "test")


async def assert_allowed(guard: Guardrails, value: Any) -> None:
    await guard.check_arguments(ToolCall(id="c2", name="probe", arguments=json.dumps({"value": value})), "test")


def refused_on_both_backends(guard: Guardrails, value: Any) -> None:
    """`guard` refuses `probe(value=value)` on asyncio and on trio.

    The property tests are synchronous and run both loops here: written as async tests, one of them failed
    now and then inside hypothesis's lazy import of its own modules, with CPython 3.11's `SystemError: AST
    constructor recursion depth mismatch`.
    """
    call = ToolCall(id="c", name="probe", arguments=json.dumps({"value": value}))
    for backend in ("asyncio", "trio"):
        with pytest.raises(ArgumentViolation):
            anyio.run(guard.check_arguments, call, "test", backend=backend)


# --- paths ------------------------------------------------------------------------------------------


@pytest.fixture
def workspace(guardrails: Guardrails, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The root, made the working directory (the default configuration), with files, links and an outside."""
    root = guardrails.roots[0]
    (root / "sub").mkdir()
    (root / "notes.txt").write_text("notes")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside / "secret.txt", root / "link-out")
    os.symlink(root / "chain-2", root / "chain-1")
    os.symlink(root / "chain-3", root / "chain-2")
    os.symlink(outside / "secret.txt", root / "chain-3")
    os.symlink(outside / "not-yet.txt", root / "dangling-out")
    os.symlink(root / "notes.txt", root / "link-in")
    os.symlink(root / "loop-b", root / "loop-a")
    os.symlink(root / "loop-a", root / "loop-b")
    os.symlink("/proc/self/root", root / "proc-root")
    os.symlink(outside, root / "dir-out")
    monkeypatch.chdir(root)
    guardrails.protect("probe", paths=["value"])
    # pytest's folder names reach 32 letters and digits, the shape output redaction takes for a key.
    guardrails.redact_output = False
    return root


PATH_ATTACKS = [
    # the plain forms
    "../outside/secret.txt",
    "{root}/../outside/secret.txt",
    "/etc/passwd",
    "//etc/passwd",
    "~/.ssh/id_rsa",
    "~root/.ssh/id_rsa",
    # percent-encoded, once and twice, in upper and lower case
    "..%2foutside%2fsecret.txt",
    "%2e%2e/outside/secret.txt",
    "%2E%2E%2Foutside%2Fsecret.txt",
    "sub/%2e%2e/%2e%2e/outside/secret.txt",
    "%252e%252e%252foutside%252fsecret.txt",
    "..%252foutside/secret.txt",
    "%25252e%25252e/outside/secret.txt",
    # overlong UTF-8 for '.' and '/' (and '\\'), and a percent-encoded NUL
    "%c0%ae%c0%ae/outside/secret.txt",
    "..%c0%afoutside%c0%afsecret.txt",
    "..%c1%9coutside%c1%9csecret.txt",
    "%e0%80%ae%e0%80%ae/outside/secret.txt",
    "%u002e%u002e%u002foutside%u002fsecret.txt",
    "notes.txt%00/../../outside/secret.txt",
    # backslashes and mixed separators
    "..\\outside\\secret.txt",
    "sub\\..\\..\\outside\\secret.txt",
    "sub/..\\../outside/secret.txt",
    "..%5coutside%5csecret.txt",
    "C:\\Windows\\win.ini",
    "c:/windows/win.ini",
    "\\\\server\\share\\secret.txt",
    # fullwidth and compatibility dots, slashes and tildes (equal to ASCII after NFKC)
    "\uff0e\uff0e\uff0foutside\uff0fsecret.txt",
    "\uff0e\uff0e/outside/secret.txt",
    "\u2025/outside/secret.txt",
    "\ufe52\ufe52/outside/secret.txt",
    "..\uff3coutside\uff3csecret.txt",
    "\uff5e/.ssh/id_rsa",
    # trailing dots and spaces (Windows drops them: '.. ' and '.. .' are '..')
    ".. /outside/secret.txt",
    ".. ./outside/secret.txt",
    "..  /outside/secret.txt",
    "sub/.../../outside/secret.txt",
    " ../outside/secret.txt",
    "....//outside/secret.txt",
    # a path parameter: servers that read `;...` as one take `..;/` for `..`
    "..;/outside/secret.txt",
    "sub/..;x=1/..;/outside/secret.txt",
    # file URLs and other URLs given as paths
    "file:///etc/passwd",
    "FILE:///etc/passwd",
    "file://localhost/etc/passwd",
    "file:/etc/passwd",
    "file:../outside/secret.txt",
    "file:///{root}/../outside/secret.txt",
    "s3://bucket/key",
    "http://127.0.0.1/secret",
    # 4- to 6-byte overlong UTF-8, and the lax 2-byte forms whose second byte is no continuation byte
    "%f0%80%80%ae%f0%80%80%ae/outside/secret.txt",
    "%f8%80%80%80%ae%f8%80%80%80%ae/outside/secret.txt",
    "%fc%80%80%80%80%ae%fc%80%80%80%80%ae%c0%2foutside%c0%2fsecret.txt",
    "%c0%2e%c0%2e%c0%2foutside/secret.txt",
    "%c0.%c0./outside/secret.txt",
    # separators Windows' best-fit mapping and IIS's `%u` decoding read as `/` and `\`
    "..\u2215outside\u2215secret.txt",
    "..%u2215outside/secret.txt",
    "..%u2216outside/secret.txt",
    "..%uEFC8outside/secret.txt",
    "..%uF025outside/secret.txt",
    # a shell drops escaping backslashes; a lax decoder drops a `%` that starts no escape
    ".\\./outside/secret.txt",
    ".\\\\./outside/secret.txt",
    "%25%5c..%25%5coutside%25%5csecret.txt",
    "%%c0%6e%c0%6e/outside/secret.txt",
    # wildcards a globbing tool may expand to `..` or to a link out
    ".?/outside/secret.txt",
    "*/secret.txt",
    # control characters, and variables a tool may expand
    "notes.txt\x00../../outside",
    "%0a/bin/cat%20/etc/passwd",
    "notes.txt%01",
    "$HOME/.ssh/id_rsa",
    "${{HOME}}/.ssh/id_rsa",
    "%HOME%/.ssh/id_rsa",
    # symlinks: out, chains, dangling, loops, magic links
    "link-out",
    "chain-1",
    "dangling-out",
    "dir-out/secret.txt",
    "loop-a/../../outside/secret.txt",
    "proc-root/etc/passwd",
    "/proc/self/root/etc/passwd",
    "/proc/self/cwd/../outside/secret.txt",
    "/dev/fd/0",
    "/proc/self/fd/0",
    # very long paths
    "a/" * 3000 + "../" * 3001 + "outside/secret.txt",
    "x" * 5000,
]


@pytest.mark.parametrize("attack", PATH_ATTACKS, ids=range(len(PATH_ATTACKS)))
async def test_path_escapes_are_refused_in_every_spelling(guardrails: Guardrails, workspace: Path, attack: str) -> None:
    await assert_refused(guardrails, attack.format(root=workspace))


@pytest.mark.parametrize(
    "value",
    [
        3,  # a number: `open(3)` opens file descriptor 3
        True,
        1.5,
        ["notes.txt", "/etc/passwd"],
        {"first": "notes.txt", "second": "../outside/secret.txt"},
        {"../outside/secret.txt": "notes.txt"},
        json.dumps(["notes.txt", "../outside/secret.txt"]),
        json.dumps({"path": "/etc/passwd"}),
        [[["/etc/passwd"]]],
        [3],
    ],
)
async def test_paths_nested_or_not_strings_are_refused(guardrails: Guardrails, workspace: Path, value: Any) -> None:
    await assert_refused(guardrails, value)


@pytest.mark.parametrize(
    "value",
    [
        "notes.txt",
        "./notes.txt",
        "sub/../notes.txt",
        "{root}/notes.txt",
        "link-in",
        "new-file.txt",
        "sub/deeper/new.txt",
        "name with spaces.txt",
        "50% done.txt",
        "a;b.txt",
        "r\u00e9sum\u00e9.txt",
        ["notes.txt", "sub/x"],
        None,
    ],
)
async def test_paths_inside_the_root_pass(guardrails: Guardrails, workspace: Path, value: Any) -> None:
    value = value.format(root=workspace) if isinstance(value, str) else value
    received, text = await call_tool(guardrails, value)
    assert (received, text) == ([value], "ran")


async def test_a_symlink_is_judged_by_its_target_at_the_time_of_each_call(
    guardrails: Guardrails, workspace: Path, tmp_path: Path
) -> None:
    os.symlink(workspace / "notes.txt", workspace / "moving")
    received, text = await call_tool(guardrails, "moving")
    assert (received, text) == (["moving"], "ran")
    os.remove(workspace / "moving")
    os.symlink(tmp_path / "outside" / "secret.txt", workspace / "moving")  # retargeted between two calls
    await assert_refused(guardrails, "moving", "outside the allowed roots")


DOT = st.sampled_from(["..", "%2e%2e", "%2E%2E", "%252e%252e", "\uff0e\uff0e", "\u2025", ".. ", ".. .", "%c0%ae%c0%ae"])
SEP = st.sampled_from(["/", "\\", "%2f", "%2F", "%5c", "%252f", "\uff0f", "\uff3c", "%c0%af"])


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.lists(st.sampled_from(["sub", ".", "sub/deeper"]), max_size=3), data=st.data())
def test_property_any_spelling_of_climbing_out_is_refused(
    guardrails: Guardrails, workspace: Path, prefix: list[str], data: st.DataObject
) -> None:
    depth = sum(part.count("/") + 1 for part in prefix if part != ".")
    climb = "".join(data.draw(DOT) + data.draw(SEP) for _ in range(depth + 1))
    refused_on_both_backends(guardrails, "/".join([*prefix, climb + "outside"]))


# --- URLs ---------------------------------------------------------------------------------------------

URL_ATTACKS = [
    # loopback, private, link-local, CGNAT, multicast, unspecified, broadcast, benchmarking, reserved
    "http://127.0.0.1/",
    "http://127.255.255.254/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://169.254.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://0.0.0.0/",
    "http://0/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
    "http://240.0.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://[ff0e::1]/",
    # IPv4 inside IPv6: mapped, compatible, translated, NAT64, 6to4, Teredo
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[::ffff:0:7f00:1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b:1::a00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a00:1::1]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
    # IPv4 in decimal, octal, hex, short and padded forms; trailing dots
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0177.1/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0x7F.0x00.0x00.0x01/",
    "http://017700000001/",
    "http://127.1/",
    "http://127.0.1/",
    "http://127.000.000.001/",
    "http://0127.0.0.1/",
    "http://127.0.0.1./",
    "http://127.0.0.1../",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    # names that resolve to loopback; trailing dots, case, ports
    "http://localhost/",
    "http://LOCALHOST./",
    "http://localhost:6379/",
    "https://localhost:443/",
    "http://customer1.app.localhost/",
    "http://LOCALHOST.localhost./",
    # wildcard DNS names that carry a private address (refused without a lookup), and names that resolve to
    # loopback (refused by the answer, or as unresolvable where no DNS answers)
    "http://127.0.0.1.nip.io/",
    "http://app.10.0.0.1.nip.io/",
    "http://customer2-app-127-0-0-1.nip.io/",
    "http://magic-7f000001.nip.io/",
    "http://7F000001.nip.io/",
    "http://0a000001.nip.io/",
    "http://10-0-0-1.sslip.io/",
    "http://192-168-1-1.sslip.io/",
    "http://169.254.169.254.nip.io/latest/meta-data/",
    "http://169-254-169-254.sslip.io/",
    "http://a9fea9fe.nip.io/",
    "http://--1.sslip.io/",
    "http://fe80--1.sslip.io/",
    "http://fd00-ec2--254.sslip.io/",
    "http://--ffff-7f00-1.sslip.io/",
    "http://www---1.sslip.io/",
    "http://10.0.0.1.traefik.me/",
    "http://127-0-0-1.traefik.me/",
    "http://127.0.0.1.xip.io/",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11.nip.io/",
    "http://127\u30020\u30020\u30021.nip.io/",
    "http://localtest.me/",
    "http://sub.localtest.me/",
    "http://lvh.me/",
    "http://app.lvh.me/",
    # cloud metadata
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL/",
    "http://metadata/computeMetadata/v1/",
    "http://\uff4d\uff45\uff54\uff41\uff44\uff41\uff54\uff41.google.internal/",
    "http://metadata\u3002google\u3002internal/",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    # user-info, backslashes, whitespace and controls that parsers read differently
    "http://example.com@127.0.0.1/",
    "http://example.com:80@127.0.0.1/",
    "http://user:pass@example.com/",
    "http://127.0.0.1\\@example.com/",
    "http://127.0.0.1\\.example.com/",
    "http://127.0.0.1\t/",
    "http://127.0.0.1\n.example.com/",
    "http://example.com\r\n@127.0.0.1/",
    "http:\\\\127.0.0.1\\",
    "http:/127.0.0.1/",
    "http:127.0.0.1/",
    " http://127.0.0.1/",
    "http://127.0.0.1\x00.example.com/",
    "http://%31%32%37.0.0.1/",
    "http://127.0.0.1%2f.example.com/",
    # IDNA, fullwidth and ideographic dots
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
    "http://127\u30020\u30020\u30021/",
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
    # schemes that are not http(s)
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_SET",
    "dict://127.0.0.1:11211/stats",
    "ftp://127.0.0.1/",
    "data:text/plain,hello",
    "javascript:alert(1)",
    "ldap://127.0.0.1/",
    "ws://127.0.0.1/",
    "jar:http://example.com!/",
    # malformed ports
    "http://example.com:99999/",
    "http://example.com:-1/",
    "http://example.com:8o/",
    "http://[::1/",
]


@pytest.mark.parametrize("url", URL_ATTACKS, ids=range(len(URL_ATTACKS)))
async def test_ssrf_targets_are_refused_in_every_spelling(guardrails: Guardrails, url: str) -> None:
    guardrails.protect("probe", urls=["value"])
    await assert_refused(guardrails, url)


METADATA = {"allow_private": True}  # private addresses allowed: metadata services still are not
ALLOWED = {"allow_hosts": (".allowed.test", "allowed.test")}
DENIED = {"deny_hosts": (".evil.test", "evil.test")}
URL_POLICY_ATTACKS = [
    *(
        (METADATA, url, "metadata")
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://\uff4d\uff45\uff54\uff41\uff44\uff41\uff54\uff41.google.internal/",
            "http://metadata\u3002google\u3002internal/",
        ]
    ),
    (METADATA, "http://2852039166/", "four decimal numbers"),
    (METADATA, "http://169.254.169.254.nip.io/", "metadata"),
    (METADATA, "http://a9fea9fe.nip.io/", "metadata"),
    (METADATA, "http://fd00-ec2--254.sslip.io/", "metadata"),
    (DENIED, "http://ev\u200bil.test/", "control character"),
    *(
        (ALLOWED, url, "")
        for url in [
            "http://127.0.0.1\\@allowed.test/",
            "http://127.0.0.1\\.allowed.test/",
            "http://allowed.test@127.0.0.1/",
            "http://allowed.test:443@127.0.0.1/",
            "http://127.0.0.1#@allowed.test/",
            "http://127.0.0.1%2f.allowed.test/",
            "http://127.0.0.1%00.allowed.test/",
            "http://127.0.0.1\t.allowed.test/",
            "http://allowed.test.127.0.0.1.nip.io/",
            "http://allowed.test\uff0e127.0.0.1/",
        ]
    ),
    *(
        (DENIED, url, "is denied")
        for url in [
            "http://evil.test/",
            "http://EVIL.TEST./",
            "http://\uff45\uff56\uff49\uff4c.test/",
            "http://evil\u3002test/",
            "http://sub.evil.test/",
        ]
    ),
]


@pytest.mark.parametrize(("settings", "url", "reason"), URL_POLICY_ATTACKS, ids=range(len(URL_POLICY_ATTACKS)))
async def test_host_policies_hold_in_every_spelling(
    guardrails: Guardrails, settings: dict[str, Any], url: str, reason: str
) -> None:
    for name, setting in settings.items():
        setattr(guardrails, name, setting)
    guardrails.protect("probe", urls=["value"])
    await assert_refused(guardrails, url, reason)


@pytest.mark.parametrize(
    "value",
    [
        ["https://93.184.215.14/", "http://127.0.0.1/"],
        {"primary": "https://93.184.215.14/", "fallback": "http://10.0.0.1/"},
        json.dumps({"url": "http://169.254.169.254/"}),
        json.dumps(["http://127.0.0.1/"]),
        2130706433,
        None,
    ],
)
async def test_urls_nested_or_not_strings_are_refused(guardrails: Guardrails, value: Any) -> None:
    guardrails.protect("probe", urls=["value"])
    if value is None:
        await assert_allowed(guardrails, value)  # an argument left out is not a URL
    else:
        await assert_refused(guardrails, value)


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.215.14/page?q=1#top",
        "https://93.184.215.14/search?q=a%20b&next=%2F..%2F&x=%0A",
        "https://93.184.215.14/a\\b c",
        {"primary": "https://93.184.215.14/", "fallback": ["http://8.8.8.8/"]},
        "http://8.8.8.8:8080/",
        "https://[2606:4700::6810:84e5]/",
        "HTTPS://8.8.4.4",
    ],
)
async def test_public_urls_pass(guardrails: Guardrails, url: Any) -> None:
    guardrails.protect("probe", urls=["value"])
    received, text = await call_tool(guardrails, url)
    assert (received, text) == ([url], "ran")


PRIVATE_NETWORKS = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


def _spellings(address: ipaddress.IPv4Address) -> list[str]:
    number = int(address)
    octets = address.packed
    return [
        str(address),
        str(number),
        hex(number),
        ".".join(f"0{octet:o}" for octet in octets),
        ".".join(hex(octet) for octet in octets),
        f"{octets[0]}.{number & 0xFFFFFF}",
        f"{octets[0]}.{octets[1]}.{number & 0xFFFF}",
        f"[::ffff:{address}]",
        f"[::ffff:{number >> 16:x}:{number & 0xFFFF:x}]",
        f"[64:ff9b::{address}]",
        f"[2002:{number >> 16:x}:{number & 0xFFFF:x}::1]",
        f"{address}.",
        "".join(chr(0xFF10 + int(char)) if char.isdigit() else "\uff0e" for char in str(address)),
    ]


@settings(max_examples=200)
@given(
    network=st.sampled_from(PRIVATE_NETWORKS),
    data=st.data(),
    scheme=st.sampled_from(["http", "https", "HTTP", "hTtPs"]),
    port=st.sampled_from(["", ":80", ":8080", ":6379"]),
    path=st.sampled_from(["/", "/latest/meta-data/", "", "/?q=1#x"]),
)
def test_property_private_addresses_are_refused_in_any_spelling(
    network: str, data: st.DataObject, scheme: str, port: str, path: str
) -> None:
    guard = Guardrails(roots=(), tools={})
    guard.protect("probe", urls=["value"])
    address = data.draw(st.ip_addresses(network=network))
    assert isinstance(address, ipaddress.IPv4Address)
    host = data.draw(st.sampled_from(_spellings(address)))
    url = f"{scheme}://{host}{port}{path}"
    refused_on_both_backends(guard, url)


# --- shell metacharacters -------------------------------------------------------------------------------

SHELL_ATTACKS = [
    "a;id",
    "a|id",
    "a&id",
    "a&&id",
    "a||id",
    "$(id)",
    "`id`",
    "${IFS}id",
    "a$IFS/id",
    "(id)",
    "a<b",
    "a>b",
    "a\nid",
    "a\rid",
    "a\x00id",
    "a\x0bid",
    "a\x0cid",
    "a\x1bid",
    "a\x85id",
    "a\u2028id",
    "a\u2029id",
    "*.txt",
    "file?.txt",
    "[a-z]",
    "~/x",
    "a^id",
    # fullwidth and compatibility forms that are metacharacters after NFKC
    "a\uff1bid",
    "a\ufe54id",
    "a\u037eid",
    "a\uff5cid",
    "a\uff06id",
    "\uff04\uff08id\uff09",
    "\uff40id\uff40",
    "a\uff1cb",
    "a\uff1eb",
    "a\ufe64b",
    # percent-encoded once and twice
    "a%3bid",
    "a%3Bid",
    "a%7cid",
    "a%0aid",
    "a%0did",
    "a%00id",
    "%24%28id%29",
    "a%253bid",
    "%2524(id)",
]


METACHARACTERS = ";|&$`()<>\n\r\x00"


@settings(max_examples=200)
@given(
    before=st.text(st.characters(categories=("L", "N"), max_codepoint=0x2FF), max_size=20),
    after=st.text(st.characters(categories=("L", "N"), max_codepoint=0x2FF), max_size=20),
    char=st.sampled_from(METACHARACTERS),
    spelling=st.sampled_from(["plain", "fullwidth", "percent", "percent twice"]),
)
def test_property_a_metacharacter_anywhere_in_any_spelling_is_refused(
    before: str, after: str, char: str, spelling: str
) -> None:
    guard = Guardrails(roots=(), tools={})
    guard.protect("probe", shell=False)
    if spelling == "fullwidth" and 0x21 <= ord(char) <= 0x7E:
        char = chr(ord(char) + 0xFEE0)
    elif spelling.startswith("percent"):
        char = urllib.parse.quote(char, safe="")
        char = char.replace("%", "%25") if spelling == "percent twice" else char
    refused_on_both_backends(guard, before + char + after)


# --- storage URLs -------------------------------------------------------------------------------------------

STORAGE_ATTACKS = [
    "s3://bucket/key",
    "S3://bucket/key",
    "s3a://bucket/key",
    "s3n://bucket/key",
    "gs://bucket/object",
    "abfs://container@account.dfs.core.windows.net/x",
    "oss://bucket/key",
    "hf://datasets/org/name",
    "webhdfs://namenode/x",
    "dbfs:/mnt/data",
    "file:/etc/passwd",
    "file:///etc/passwd",
    "postgresql+psycopg2://user@db/app",
    "mysql+pymysql://user@db/app",
    "sqlite+aiosqlite:///app.db",
    "duckdb:///app.duckdb",
    "clickhouse://db:9000/x",
    "neo4j://db:7687",
    "ssh://host/x",
    "zip://inner.txt::s3://bucket/archive.zip",
    "see lancedb://./vectors",
    "x_s3://bucket/key",
    "\uff53\uff13://bucket/key",
    "s3\uff1a//bucket/key",
    "s3:\uff0f\uff0fbucket/key",
    "s3%3A%2F%2Fbucket%2Fkey",
    "s3%253A%252F%252Fbucket",
    "s\u200b3://bucket/key",
    "s3:\\\\bucket\\key",
]


TEXT_ATTACKS = [
    *(({"shell": False}, value) for value in SHELL_ATTACKS),
    *(({"storage_urls": False}, value) for value in STORAGE_ATTACKS),
    ({"shell": False}, {"a;id": "x"}),
    ({"shell": False}, ["ok", ["a|id"]]),
    ({"shell": False}, json.dumps({"pattern": "a\u037eid"})),
    ({"shell": False}, json.dumps(["a%3bid"])),
    ({"shell": False}, "https://example.tld/\uff02 --use-askpass=calc \uff02.txt"),  # Windows reads `"`
    ({"storage_urls": False}, {"s3://bucket/key": "x"}),
    ({"storage_urls": False}, r'{"to": "s3\u003a//bucket/key"}'),
    ({"storage_urls": False}, [["redis://cache:6379/0"]]),
]


@pytest.mark.parametrize(("declared", "value"), TEXT_ATTACKS, ids=range(len(TEXT_ATTACKS)))
async def test_shell_metacharacters_and_storage_urls_are_refused_in_every_spelling_and_place(
    guardrails: Guardrails, declared: dict[str, Any], value: Any
) -> None:
    guardrails.protect("probe", **declared)
    await assert_refused(guardrails, value)


TEXT_PASSING = [
    *(
        ({"shell": False}, value)
        for value in [
            "weather in Berlin, 2026-11-27",
            "50% off",
            "r\u00e9sum\u00e9 2026",
            "100%",
            "a-b_c.d/e:f",
            42,
            None,
        ]
    ),
    *(
        ({"storage_urls": False}, value)
        for value in [
            "https://example.com/page",
            "http://example.com",
            "memory: 4 GB",
            "at 10:30",
            "C:/Users/ann",
            "a file",
        ]
    ),
]


@pytest.mark.parametrize(("declared", "value"), TEXT_PASSING)
async def test_plain_values_and_web_urls_pass_the_text_checks(
    guardrails: Guardrails, declared: dict[str, Any], value: Any
) -> None:
    guardrails.protect("probe", **declared)
    received, text = await call_tool(guardrails, value)
    assert (received, text) == ([value], "ran")


@settings(max_examples=100)
@given(
    scheme=st.sampled_from(["s3", "gs", "az", "hdfs", "redis", "sqlite", "postgresql", "mongodb", "ftp", "chroma"]),
    case=st.sampled_from(["lower", "upper", "fullwidth"]),
    driver=st.sampled_from(["", "+asyncpg", "+srv"]),
    encode=st.booleans(),
    before=st.sampled_from(["", "see ", "x_", "(", "'"]),
)
def test_property_a_storage_url_in_any_spelling_is_refused(
    scheme: str, case: str, driver: str, encode: bool, before: str
) -> None:
    guard = Guardrails(roots=(), tools={})
    guard.protect("probe", storage_urls=False)
    spelled = {
        "lower": scheme,
        "upper": scheme.upper(),
        "fullwidth": "".join(chr(ord(char) + 0xFEE0) for char in scheme),
    }[case]
    url = f"{spelled}{driver}://host/x"
    value = before + (urllib.parse.quote(url, safe="") if encode else url)
    refused_on_both_backends(guard, value)


# --- names resolved, names not resolved --------------------------------------------------------------------


NAMES_CARRYING_ADDRESSES = [
    url for url in URL_ATTACKS if re.search(r"nip\.io|sslip\.io|xip\.io|traefik\.me|\.localhost", url)
]


@pytest.mark.parametrize("url", NAMES_CARRYING_ADDRESSES)
async def test_names_carrying_a_private_address_are_refused_without_a_lookup(
    guardrails: Guardrails, resolver: list[str], url: str
) -> None:
    guardrails.protect("probe", urls=["value"])
    await assert_refused(guardrails, url)
    assert resolver == []


@pytest.mark.parametrize(
    "url",
    [
        "http://www.example.com/",
        "http://8.8.8.8.nip.io/",
        "http://cdn-1-2-3-4.example.com/",
        "http://deadbeef.example.com/",
        "http://release-2024-10-01.example.com/",
        "http://v1-2-3.example.com/",
        "http://2a01-4f8-c17-b8f--2.sslip.io/",
        "http://xn--bcher-kva.example/",
        "http://localhost-docs.example.com/",
        "http://my-localhost.example.com/",
    ],
)
async def test_names_that_carry_no_private_address_are_judged_by_their_answer(
    guardrails: Guardrails, resolver: list[str], url: str
) -> None:
    guardrails.protect("probe", urls=["value"])
    received, text = await call_tool(guardrails, url)
    assert (received, text) == ([url], "ran")
    assert resolver == [urllib.parse.urlsplit(url).hostname]


@pytest.mark.parametrize("url", ["http://intranet.loopback.test/", "http://files.down.test/"])
async def test_a_name_answered_with_loopback_or_not_answered_is_refused(
    guardrails: Guardrails, resolver: list[str], url: str
) -> None:
    guardrails.protect("probe", urls=["value"])
    reason = "127.0.0.1" if "loopback" in url else "does not resolve"
    await assert_refused(guardrails, url, reason)


async def test_private_names_follow_allow_private_and_allow_hosts(guardrails: Guardrails, resolver: list[str]) -> None:
    guardrails.protect("probe", urls=["value"])
    guardrails.allow_private = True  # a private address carried by the name is then resolved like any other
    await assert_allowed(guardrails, "http://10-0-0-1.sslip.io/")
    await assert_allowed(guardrails, "http://app.localhost/")
    assert resolver == ["10-0-0-1.sslip.io"]
    guardrails.allow_private = False
    guardrails.allow_hosts = (".lab.example",)  # a listed host is vouched for, whatever its name carries
    await assert_allowed(guardrails, "http://ip-10-0-0-5.lab.example/")
    await assert_refused(guardrails, "http://10.0.0.5.nip.io/", "not in the allowed hosts")


# --- command-line operands ------------------------------------------------------------------------------------
# Options of common programs that run a command or write a file when an operand is taken for one (the program
# documentation's option names, the vectors SonarSource's Argument Injection Vectors collects), then the spellings.

OPERAND_ATTACKS = [
    "-e /bin/sh",
    "--output=/etc/passwd",
    "-o/tmp/x",
    "--upload-pack=touch /tmp/x",
    "-u touch /tmp/x",
    "--config=core.sshCommand=touch /tmp/x",
    "-c core.pager=id",
    "--open-files-in-pager=id",
    "-oProxyCommand=sh -c id",
    "--checkpoint-action=exec=sh x.sh",
    "--to-command=sh",
    "--use-compress-program=sh",
    "-TT",
    "--unzip-command=sh -c id",
    "--rsh=sh -c id",
    "-X/tmp/log",
    "--exec",
    "-exec",
    "-rf",
    "-",
    "--",
    "-5",
    -5,
    -0.5,
    # blanks, quotes and hidden characters before the dash; dash look-alikes; percent-encoded dashes
    " -e",
    "\t--exec",
    "\u3000-e",
    "'-e'",
    '"--exec"',
    "\uff02 --use-askpass=calc \uff02",
    "\u200b-e",
    "\u2060--exec",
    "\u200b\u00adrf",
    "\uff02\u00adrf",
    "\u00adrf",
    "\u2010e",
    "\u2011rf",
    "\u2012rf",
    "\u2013rf",
    "\u2014exec",
    "\u2015rf",
    "\u2043rf",
    "\u2212rf",
    "\ufe58rf",
    "\ufe63rf",
    "\uff0drf",
    "%2de",
    "%2D%2Dexec",
    "%252drf",
    "%u002drf",
    # nested
    ["notes.txt", "-rf"],
    {"--exec": "x"},
    json.dumps(["-e", "sh"]),
]


@pytest.mark.parametrize("value", OPERAND_ATTACKS, ids=range(len(OPERAND_ATTACKS)))
async def test_operands_that_read_as_options_are_refused_in_every_spelling(guardrails: Guardrails, value: Any) -> None:
    guardrails.protect("probe", operands=["value"])
    await assert_refused(guardrails, value, "starts with '-'")


@pytest.mark.parametrize(
    "value",
    [
        "pattern",
        "foo-bar",
        "a - b",
        "error -5 seen",
        "x --exec y",
        "./-rf",
        "https://example.com/-a",
        "5",
        5,
        0,
        1.5,
        True,
        "",
        "r\u00e9sum\u00e9-2026",
        "\u65e5\u672c-\u8a9e",
        "a\u2014b",
        None,
    ],
)
async def test_operands_with_a_dash_inside_pass(guardrails: Guardrails, value: Any) -> None:
    guardrails.protect("probe", operands=["value"])
    received, text = await call_tool(guardrails, value)
    assert (received, text) == ([value], "ran")


DASH = st.sampled_from(["-", "--", "\u2010", "\u2013", "\u2212", "\uff0d", "\ufe63", "%2d", "%252d", "\u00ad"])
BEFORE_DASH = st.sampled_from(["", " ", "\t", "\u3000", "'", '"', "\uff02 ", "\u200b", "\ufeff", " '"])


@settings(max_examples=200)
@given(
    before=BEFORE_DASH,
    dash=DASH,
    name=st.text(st.characters(categories=("L", "N"), max_codepoint=0x2FF), max_size=20),
    value=st.sampled_from(["", "=/etc/passwd", " /bin/sh", "=touch /tmp/x"]),
)
def test_property_an_option_in_any_spelling_is_refused(before: str, dash: str, name: str, value: str) -> None:
    guard = Guardrails(roots=(), tools={})
    guard.protect("probe", operands=["value"])
    refused_on_both_backends(guard, before + dash + name + value)


# --- both run paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        ({"paths": ["value"]}, "..%2f..%2fetc%2fpasswd"),
        ({"urls": ["value"]}, "http://[2002:7f00:1::]/"),
        ({"shell": False}, "a\uff1bid"),
        ({"storage_urls": False}, "postgresql+psycopg2://db/app"),
        ({"operands": ["value"]}, "\u2212-upload-pack=touch /tmp/x"),
        ({"urls": ["value"]}, "http://10-0-0-1.sslip.io/"),
    ],
)
@pytest.mark.parametrize(("stream", "observed"), [(False, True), (True, False), (True, True)])
async def test_observed_and_streamed_runs_refuse_them_too(
    guardrails: Guardrails, declared: dict[str, Any], value: str, stream: bool, observed: bool
) -> None:
    guardrails.protect("probe", **declared)
    events: list[Event] | None = [] if observed else None
    received, text = await call_tool(guardrails, value, stream=stream, events=events)
    assert received == []
    assert "blocked by a guardrail" in text
    if events is not None:  # the observed path ran: the subscriber saw the call announced, then failed
        calls = [(event.type, event.data["call_id"]) for event in events if event.type.startswith("tool.")]
        assert calls == [("tool.started", "c1"), ("tool.failed", "c1")]


# --- public payload lists ----------------------------------------------------------------------------------
# `data/payloads_all_the_things.json` holds payload lines (no prose) of swisskyrepo/PayloadsAllTheThings at
# commit f9fa51417886ac11476cb62db2dff21773dc570b (MIT License, Copyright (c) 2019 Swissky), by file:
# Directory Traversal/Intruder/{directory_traversal,deep_traversal,traversals-8-deep-exotic-encoding}.txt
# whole, dotdotpwn.txt's `etc/passwd` lines (the shallowest of each spelling); the URLs in the code blocks of
# Server Side Request Forgery/{README,SSRF-Cloud-Instances,SSRF-Advanced-Exploitation}.md; and
# Command Injection/Intruder/{command-execution-unix,command_exec}.txt whole; and from Command Injection/README.md
# the commands of the Argument Injection section's ps1 code blocks and the payload in its text. A payload that is
# no attack in this model is left out by one of the rules below, never one by one; the counts are asserted, so a
# change to the lists or the rules shows. Refused before session 10's fixes: paths 1,987 of 2,293 (4- to 6-byte
# and lax overlong UTF-8, best-fit separators `%u2215`, shell-escaped and `%`-prefixed dots, `?` wildcards,
# control characters got through), URLs 145 of 145, shell 486 of 486; now all. Session 11 keeps the DNS name that
# carries an address (`169.254.169.254.nip.io`, refused without a lookup: URLs 146 of 146) and adds the argument
# injections (options 5 of 5 refused; SonarSource's larger list is GPL-3.0, so not copied here).

PAYLOADS = json.loads((Path(__file__).parent / "data" / "payloads_all_the_things.json").read_text("utf-8"))

# Spellings of `.`, `/` or `\` that no decoder produces: hex written as text (`0x2f`), escapes with a non-hex
# digit (`%9v`, `%pc`), `%%32%%66` (it decodes to `%2%f`), and `%c0%fe`, `%c1%af` (a lax decoder reads `>`, `o`).
_NO_DECODER_SEPARATOR = re.compile(r"(?i)0x[0-9a-f]{2}|%(?!u[0-9a-f]{4})[0-9a-f]?[g-z]|%%3\d%%|%c0%fe|%c1%af")


def _plain_decoded(value: str) -> str:
    for _ in range(8):
        value, before = urllib.parse.unquote(value), value
        if value == before:
            break
    return value


def path_exclusion(payload: str) -> str | None:
    """Why a traversal payload is no escape from the root in this model, if it is none."""
    if _NO_DECODER_SEPARATOR.search(payload):
        return "a separator or dot no decoder produces"
    if "/\\/" in payload or "\\/\\" in payload:
        return "filter evasion: `..` only once a filter deletes a run of slashes and backslashes"
    if re.match(r"A{100,}/\.\./", payload):
        return "path truncation: `A.../..` names a file inside the root; no tool truncates the path"
    decoded = _plain_decoded(payload)
    if re.fullmatch(r"(\./)*\.?\w[\w.-]*", decoded) and ".." not in decoded:
        return "no traversal: a plain name of a file in the root (`.htaccess`, `./.htaccess`)"
    return None


def url_exclusion(payload: str) -> str | None:
    """Why an SSRF payload is no attack decidable without DNS, if it is none."""
    try:
        parts = urllib.parse.urlsplit(payload)
        hostname = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        return None
    host = unicodedata.normalize("NFKC", hostname).rstrip(".")
    if (
        re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", host)
        and not re.fullmatch(r"0x[0-9a-f]*|[0-9]+", host.rsplit(".", 1)[-1])  # IPv4 spelled otherwise
        and host not in _METADATA_NAMES
        and not host_matches(host, ("localhost", ".localhost"))  # loopback by RFC 6761
        and not re.search(r"(?:^|[.-])\d{1,3}(?:[.-]\d{1,3}){3}(?:[.-]|$)", host)  # an address in the name
    ):
        return "a DNS name: the verdict is its resolver's answer"
    return None


# What POSIX gives meaning to, besides blanks: operators, expansion, quoting, escaping, line breaks.
_POSIX_SPECIAL = re.compile(r"[|&;<>()$`\\\"'\n\r]")


def shell_exclusion(payload: str) -> str | None:
    """Why a command injection payload injects nothing, if it does not."""
    if not _POSIX_SPECIAL.search(_plain_decoded(payload)):
        return "a bare command: nothing to inject unless the tool runs its argument as a command"
    return None


PATH_KEPT, PATH_EXCLUDED = (
    2293,
    {
        "a separator or dot no decoder produces": 436,
        "path truncation: `A.../..` names a file inside the root; no tool truncates the path": 16,
        "no traversal: a plain name of a file in the root (`.htaccess`, `./.htaccess`)": 6,
        "filter evasion: `..` only once a filter deletes a run of slashes and backslashes": 34,
    },
)
URL_KEPT, URL_EXCLUDED = 146, {"a DNS name: the verdict is its resolver's answer": 18}
SHELL_KEPT, SHELL_EXCLUDED = (
    486,
    {"a bare command: nothing to inject unless the tool runs its argument as a command": 45},
)


def _judged(kind: str, exclusion: Any) -> tuple[list[str], dict[str, int]]:
    kept, excluded = [], {}
    for lines in PAYLOADS[kind].values():
        for payload in lines:
            reason = exclusion(payload)
            if reason is None:
                kept.append(payload)
            else:
                excluded[reason] = excluded.get(reason, 0) + 1
    return kept, excluded


async def _passed(guard: Guardrails, payloads: list[str]) -> list[str]:
    passed = []
    for payload in payloads:
        try:
            await guard.check_arguments(ToolCall(id="c", name="probe", arguments=json.dumps({"value": payload})), "t")
        except ArgumentViolation:
            continue
        passed.append(payload)
    return passed


async def test_public_traversal_payloads_are_refused(guardrails: Guardrails, workspace: Path) -> None:
    kept, excluded = _judged("paths", path_exclusion)
    assert (len(kept), excluded) == (PATH_KEPT, PATH_EXCLUDED)
    assert await _passed(guardrails, [payload.replace("{FILE}", "etc/passwd") for payload in kept]) == []
    await assert_refused(guardrails, kept[-1])  # and the agent's tool does not run


async def test_public_ssrf_payloads_are_refused(guardrails: Guardrails) -> None:
    guardrails.protect("probe", urls=["value"])
    kept, excluded = _judged("urls", url_exclusion)
    assert (len(kept), excluded) == (URL_KEPT, URL_EXCLUDED)
    assert await _passed(guardrails, kept) == []
    await assert_refused(guardrails, kept[-1])


async def test_public_command_injection_payloads_are_refused(guardrails: Guardrails) -> None:
    guardrails.protect("probe", shell=False)
    kept, excluded = _judged("shell", shell_exclusion)
    assert (len(kept), excluded) == (SHELL_KEPT, SHELL_EXCLUDED)
    assert await _passed(guardrails, kept) == []
    await assert_refused(guardrails, kept[-1])


async def test_public_argument_injection_payloads_are_refused(guardrails: Guardrails) -> None:
    """Each command's words after the program are operands a tool passed on: the injected options are refused
    and the other words pass; the text's payload is one operand (fullwidth quotes Windows reads as `"`)."""
    guardrails.protect("probe", operands=["value"])
    commands, [text_payload] = PAYLOADS["arguments"].values()
    words = [word for command in commands for word in shlex.split(command)[1:]]
    options = [word for word in words if word.startswith("-")]
    assert (len(words), len(options)) == (7, 4)
    assert await _passed(guardrails, [*options, text_payload]) == []
    assert await _passed(guardrails, words) == [word for word in words if word not in options]
    await assert_refused(guardrails, text_payload, "starts with '-'")
