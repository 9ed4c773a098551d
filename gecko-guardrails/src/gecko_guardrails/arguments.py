"""Argument checks for the dangerous tool kinds: file paths, URLs, storage URLs, shell text.

Each check returns `None` when the value passes or the reason it is refused. Paths are resolved
(`..` and symlinks) before they are compared with the allowed roots, so a link inside a root
that points outside it is refused. URL hosts are resolved (in a worker thread) and every address
they resolve to is checked, so a DNS name pointing at a private, loopback, link-local or cloud
metadata address is refused like the address itself. The tool resolves the name again when it
connects, so a name that changes its answer in between (DNS rebinding) is not caught here.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

__all__ = ("check_path", "check_shell", "check_storage_url", "check_url", "host_matches")

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
# Characters a POSIX shell gives meaning to: separators, pipes, redirection, substitution, globbing, quoting.
_SHELL = re.compile(r"[;&|`$<>(){}\[\]*?~!\\'\"#\n\r\t]")
_STORAGE_URL = re.compile(
    r"(?i)\b(?:file|s3a?|gs|gcs|az|abfss?|wasbs?|hdfs|sqlite|redis|rediss|postgres(?:ql)?|mysql|mariadb|"
    r"mongodb(?:\+srv)?|chroma|lancedb|memory|ftp|sftp|smb|nfs|jdbc:[a-z]+):(?://|[a-z]+:)"
)


async def check_path(value: str, roots: Sequence[Path]) -> str | None:
    """Refuse a path that, fully resolved, is not inside one of `roots`."""
    if "\x00" in value:
        return "the path contains a NUL byte"
    if value.startswith("~"):
        # Whether `~` means the home directory depends on the tool; either way it is not checked here.
        return f"the path {value!r} starts with '~'; pass a path inside the allowed roots"
    if not roots:
        return "no file roots are configured, so no path is allowed"

    def resolve() -> tuple[Path, list[Path]]:
        return Path(value).resolve(), [root.resolve() for root in roots]

    target, resolved_roots = await anyio.to_thread.run_sync(resolve)
    if any(target == root or target.is_relative_to(root) for root in resolved_roots):
        return None
    return f"the path {value!r} resolves to {str(target)!r}, outside the allowed roots"


def host_matches(host: str, patterns: Sequence[str]) -> bool:
    """Whether `host` is one of `patterns` or a subdomain of a pattern written `.example.com` or `*.example.com`."""
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            pattern = pattern[1:]
        if host == pattern or (pattern.startswith(".") and host.endswith(pattern)):
            return True
    return False


async def check_url(
    value: str, *, allow_hosts: Sequence[str], deny_hosts: Sequence[str], allow_private: bool
) -> str | None:
    """Refuse a URL that is not http(s), names a denied or unlisted host, or reaches a private address.

    A host in `allow_hosts` skips the address check (the user vouched for it); with an empty
    `allow_hosts` every public host is allowed.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        return f"the URL {value!r} is malformed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"the URL {value!r} is not http or https"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return f"the URL {value!r} has no host"
    if host_matches(host, deny_hosts):
        return f"the host {host!r} is denied"
    if allow_hosts:
        if host_matches(host, allow_hosts):
            return None
        return f"the host {host!r} is not in the allowed hosts"
    if host in _METADATA_NAMES:
        return f"the host {host!r} is a cloud metadata service"
    if allow_private:
        return None
    try:
        infos = await anyio.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        return f"the host {host!r} does not resolve ({exc})"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        reason = _private_reason(address)
        if reason is not None:
            shown = host if host == str(address) else f"{host!r} ({address})"
            return f"the host {shown} is {reason}"
    return None


def _private_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private or address.is_reserved or address.is_unspecified or address.is_multicast:
        return "a private or reserved address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a private or reserved address"
    return None


_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: internal, yet not `is_private`


def check_shell(value: str) -> str | None:
    """Refuse text holding a shell metacharacter."""
    match = _SHELL.search(value)
    return None if match is None else f"the value contains the shell metacharacter {match.group()!r}"


def check_storage_url(value: str) -> str | None:
    """Refuse text holding a storage or file URL (`file://`, `s3://`, `redis://`, ...)."""
    match = _STORAGE_URL.search(value)
    return None if match is None else f"the value contains a storage URL ({match.group()!r})"
