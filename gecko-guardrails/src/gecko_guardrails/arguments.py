"""Argument checks for the dangerous tool kinds: file paths, URLs, storage URLs, shell text, command-line operands.

Each check returns `None` when the value passes or the reason it is refused. A check judges every
reading of a value that a tool or a library on its way may act on, not only the text as given: NFKC
with hidden characters removed (fullwidth dots and slashes are `../`), percent-decoding applied until nothing
changes (`%252e` is `%2e` is `.`, overlong UTF-8 `%c0%ae` or `%f0%80%80%ae` is `.`), separators Windows'
best-fit mapping turns into `/` and `\\` (U+2215, U+2216), and for paths Windows' reading (backslashes, trailing dots
and spaces), a shell's (escaping backslashes dropped) and a lax decoder's (a `%` starting no escape dropped).
A value is refused when any reading is.

Paths are resolved (`..` and symlinks) before they are compared with the allowed roots, so a link
inside a root that points outside it is refused. URL hosts are normalised (IDNA, trailing dots), IPv4
must be written as four decimal numbers, a name that carries a private address (`127.0.0.1.nip.io`,
`10-0-0-1.sslip.io`, `7f000001.nip.io`) or is a `.localhost` name is refused without a lookup, and
any other host is resolved (in a worker thread) and every address it resolves to is checked, also
the IPv4 address carried inside an IPv6 one. The tool resolves the name again when it connects, so a
name that changes its answer in between (DNS rebinding) is not caught here; a symlink changed between
the check and the tool's open is not either.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

import anyio
import anyio.to_thread

from gecko_guardrails.sanitize import clean

__all__ = ("check_operand", "check_path", "check_shell", "check_storage_url", "check_url", "host_matches", "readings")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
    )
)
_METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: internal, yet not `is_private`
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_EMBEDS_LOW_32 = (*_NAT64, ipaddress.ip_network("::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))

# Characters a POSIX shell gives meaning to: separators, pipes, redirection, substitution, globbing,
# quoting, history, the Bourne shell's old pipe `^`; and every control or line-breaking character.
_SHELL = re.compile(r"[;&|`$<>(){}\[\]*?~!^\\'\"#\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A URL other than a web page's: `scheme:/...` with any scheme but http(s), or a JDBC URL.
_STORAGE_URL = re.compile(r"(?i)(?<![a-z0-9+.-])(?!https?:)([a-z][a-z0-9+.-]+:[/\\]|jdbc:[a-z])")
# A scheme where a path is expected (`file:`, `s3://`); a single letter is a Windows drive, refused apart.
_PATH_URL = re.compile(r"(?i)^(?:file:|[a-z][a-z0-9+.-]+:/)")
_DRIVE = re.compile(r"^[A-Za-z]:")
# `..;x/`: servers that take `;...` for a path parameter (Tomcat, Spring) read `..`.
_PATH_PARAMETER = re.compile(r";[^/\\]*")
# `$HOME`, `${HOME}`, `%HOME%`: a tool or a shell on its way may expand them.
_VARIABLE = re.compile(r"\$\{?[A-Za-z_]|%(?![0-9A-Fa-f]{2})[A-Za-z_][A-Za-z0-9_]*%")
_PERCENT = re.compile(rb"%[0-9A-Fa-f]{2}")
_PERCENT_U = re.compile(r"%u([0-9A-Fa-f]{4})")  # IIS's `%u002e`
# Overlong UTF-8 of 2 to 6 bytes (`%c0%ae`, `%f0%80%80%ae` for '.'): decoders that accept it read an ASCII
# character; lax ones keep only the low 6 bits of the byte after `\xc0`/`\xc1` (`%c0%2e`, `%c0%ee` are '.').
_OVERLONG = re.compile(
    rb"[\xc0\xc1][\x00-\xff]|\xe0[\x80-\x9f][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2}"
    rb"|\xf8[\x80-\x87][\x80-\xbf]{3}|\xfc[\x80-\x83][\x80-\xbf]{4}"
)
# Characters Windows' best-fit mapping (ANSI code pages) and IIS's `%u` decoding turn into `/` and `\`.
_BEST_FIT_SEPARATORS = str.maketrans(
    dict.fromkeys("\u2044\u2215\u29f8\uefc8", "/") | dict.fromkeys("\u2216\u29f5\u29f9\uf025", "\\")
)
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters URL parsers disagree on when they stand in the scheme or the host: a backslash is a separator
# to browsers and some clients, not to Python; tabs and newlines are dropped by some and kept by others;
# and every other control or space.
_URL_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f\u3000\ufeff]")
# The URL up to the end of its host and port, as the most lenient parser reads it.
_AUTHORITY = re.compile(r"[^:/?#]*:[/\\]*[^/?#]*")
# Characters IDNA 2003 (Python, glibc) and IDNA 2008 (most HTTP clients) map to different hosts.
_IDNA_DEVIATIONS = re.compile("[\u00df\u03c2\u200c\u200d]")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# An IPv4 address inside a host name, as wildcard DNS services (nip.io, sslip.io, traefik.me) read it: four numbers
# joined by dots or dashes (`127.0.0.1.nip.io`, `app-10-0-0-1.nip.io`), or eight hex digits (`7f000001.nip.io`);
# found at every position (a lookahead), so `1.2.127.0.0.1.nip.io` shows `127.0.0.1`.
_EMBEDDED_IPV4 = re.compile(
    r"(?=(?<![0-9])([0-9]{1,3})[.-]([0-9]{1,3})[.-]([0-9]{1,3})[.-]([0-9]{1,3})(?![0-9]))"
    r"|(?<![0-9a-z])([0-9a-f]{8})(?![0-9a-z])"
)
# Characters a command line's parser (Windows' best-fit mapping among them) may read as `-`: the soft hyphen, the
# Unicode hyphens and dashes, the minus sign, and the small and fullwidth hyphen-minus; and the fullwidth quotes.
_DASHES_AND_QUOTES = str.maketrans(
    dict.fromkeys("\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\ufe58\ufe63\uff0d", "-")
    | {"\uff02": '"', "\uff07": "'"}
)
_PATH_MAX = 4096
_NAME_MAX = 255


def readings(value: str) -> list[str]:
    """The ways a tool or a library on its way may read `value`: as given, cleaned (`sanitize.clean`:
    NFKC, hidden characters removed), percent-decoded (overlong UTF-8 undone) until it stops changing, and
    with best-fit separators (U+2215 is `/`)."""
    found = [value]
    current = value
    for _ in range(8):  # each round undoes one level of encoding; real values have one or two
        decoded = _percent_decoded(current)
        if decoded == current:
            break
        found.append(decoded)
        current = decoded
    for text in list(found):
        found.append(clean(text))
        found.append(clean(text).translate(_BEST_FIT_SEPARATORS))
    return list(dict.fromkeys(found))


def _percent_decoded(text: str) -> str:
    if "%" not in text:
        return text
    text = _PERCENT_U.sub(lambda match: chr(int(match.group(1), 16)), text)
    raw = text.encode("utf-8", "surrogatepass")
    if not _PERCENT.search(raw):
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    data = _OVERLONG.sub(_overlong_char, unquote_to_bytes(raw))
    return data.decode("utf-8", "replace")


def _overlong_char(match: re.Match[bytes]) -> bytes:
    data = match.group()
    code = data[0] & (0x7F >> len(data))
    for byte in data[1:]:
        code = (code << 6) | (byte & 0x3F)
    return chr(code).encode("utf-8", "surrogatepass")


async def check_path(value: str, roots: Sequence[Path]) -> str | None:
    """Refuse a path holding a control character, or that, in any reading (see `readings`; also Windows',
    a shell's, a lax decoder's, and with `;` path parameters dropped), is not inside one of `roots`."""
    if not roots:
        return "no file roots are configured, so no path is allowed"
    views = readings(value)
    for view in views:
        control = _CONTROL.search(view)
        if control is not None:
            return f"the path {value!r} contains the control character {control.group()!r}"
    if any(len(view.encode("utf-8", "surrogateescape")) >= _PATH_MAX for view in views):
        return f"the path {value[:80]!r}... is longer than a file system accepts"
    for view in views:
        reason = _path_form_reason(view)
        if reason is not None:
            return f"the path {value!r} {reason}"
    candidates = list(
        dict.fromkeys(
            path
            for view in views
            for lax in (view, view.replace("\\", ""), _STRAY_PERCENT.sub("", view))
            for path in (lax, _windows_reading(lax), _PATH_PARAMETER.sub("", lax))
        )
    )

    def resolve() -> tuple[list[tuple[str, str]], list[str]]:
        return [(path, os.path.realpath(path)) for path in candidates], [os.path.realpath(root) for root in roots]

    try:
        resolved, resolved_roots = await anyio.to_thread.run_sync(resolve)
    except (OSError, ValueError) as exc:
        return f"the path {value!r} cannot be resolved ({exc})"
    for reading, target in resolved:
        if len(target.encode("utf-8", "surrogateescape")) >= _PATH_MAX or any(
            len(part.encode("utf-8", "surrogateescape")) > _NAME_MAX for part in target.split(os.sep)
        ):
            return f"the path {value!r} is longer than a file system accepts"
        if not any(_inside(target, root) for root in resolved_roots):
            shown = "" if reading == value else f" read as {reading!r}"
            return f"the path {value!r}{shown} resolves to {target!r}, outside the allowed roots"
    return None


def _path_form_reason(view: str) -> str | None:
    """Why the text of a path is refused before resolving it, if it is."""
    if view.lstrip().startswith("~"):
        # Whether `~` means a home directory depends on the tool; either way it is not checked here.
        return "starts with '~'; pass a path inside the allowed roots"
    if "*" in view or "?" in view:
        # A tool or shell that globs may expand `.?` to `..`; Windows allows neither in a name.
        return "holds a wildcard ('*' or '?') a tool may expand; pass the path itself"
    if _VARIABLE.search(view):
        return "holds an environment variable a tool may expand; pass the path itself"
    if _PATH_URL.match(view.strip()):
        return "is a URL, not a file path"
    if os.sep == "/" and (_DRIVE.match(view) or view.startswith("\\\\")):
        return "is a Windows drive or network path"
    return None


def _windows_reading(path: str) -> str:
    """`path` as Windows reads it: backslashes separate, and trailing dots and spaces of a name are dropped
    (so `.. .` is `..`); a name of dots alone other than `.` is taken as `..`."""
    parts = []
    for part in path.replace("\\", "/").split("/"):
        if part and not part.strip(". "):
            parts.append("." if part.strip(" ") == "." else "..")
        else:
            parts.append(part.rstrip(". "))
    return "/".join(parts)


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


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
    """Refuse a URL that is not plain http(s), names a denied or unlisted host, or reaches a private address.

    A host in `allow_hosts` skips the address check (the user vouched for it); with an empty
    `allow_hosts` every public host is allowed. Cloud metadata services are refused even with
    `allow_private`. The URL is judged as given and cleaned (`sanitize.clean`).
    """
    for view in dict.fromkeys((value.strip(), clean(value.strip()))):
        reason = await _check_one_url(view, allow_hosts, deny_hosts, allow_private)
        if reason is not None:
            return reason if view == value.strip() else f"{reason} (the URL {value!r} read as {view!r})"
    return None


async def _check_one_url(
    value: str, allow_hosts: Sequence[str], deny_hosts: Sequence[str], allow_private: bool
) -> str | None:
    head = _AUTHORITY.match(value)
    if _URL_AMBIGUOUS.search(value if head is None else head.group()):
        return f"the URL {value!r} holds a backslash, a space or a control character before its path"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return f"the URL {value!r} is malformed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"the URL {value!r} is not http or https"
    if "@" in parts.netloc:
        return f"the URL {value!r} holds user-info before its host ('user@host'); pass credentials another way"
    if "%" in parts.netloc:
        return f"the URL {value!r} has a percent-encoded host or a zone id"
    host, literal, reason = _host(parts.hostname or "", bracketed="[" in parts.netloc)
    if reason is not None:
        return f"the URL {value!r} {reason}"
    if host_matches(host, deny_hosts):
        return f"the host {host!r} is denied"
    if host in _METADATA_NAMES:
        return f"the host {host!r} is a cloud metadata service"
    if allow_hosts:
        if host_matches(host, allow_hosts):
            return None
        return f"the host {host!r} is not in the allowed hosts"
    if literal is not None:
        reason = _address_reason(literal, allow_private)
        return None if reason is None else f"the host {host} is {reason}"
    for embedded in _embedded_addresses(host):
        reason = _address_reason(embedded, allow_private)
        if reason is not None:
            return f"the host {host!r} carries {embedded} in its name, {reason}: wildcard DNS services resolve it there"
    try:
        infos = await anyio.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        return f"the host {host!r} does not resolve ({exc})"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        reason = _address_reason(address, allow_private)
        if reason is not None:
            return f"the host {host!r} ({address}) is {reason}"
    return None


def _host(raw: str, *, bracketed: bool) -> tuple[str, Address | None, str | None]:
    """The host as a resolver reads it (IDNA ASCII, lower case, no trailing dot), its address when it is
    an IP literal, and why it is refused, if it is."""
    if bracketed:
        try:
            literal = ipaddress.IPv6Address(raw)
        except ValueError:
            return raw, None, "has a bracketed host that is not an IPv6 address"
        return str(literal), literal, None
    if _IDNA_DEVIATIONS.search(raw):
        return raw, None, "has a host with a character HTTP clients and resolvers map differently (IDNA)"
    try:
        host = clean(raw).rstrip(".\u3002\uff61").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        return raw, None, f"has an invalid host name ({exc})"
    if not host:
        return host, None, "has no host"
    if host_matches(host, ("localhost", ".localhost")):  # loopback by RFC 6761, whatever a resolver answers
        return host, ipaddress.IPv4Address("127.0.0.1"), None
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            return host, None, "has a host that ends in a number but is not four decimal numbers; write the address so"
        return host, address, None
    return host, None, None


def _embedded_addresses(host: str) -> list[Address]:
    """The addresses a host name carries in its labels: IPv4 dotted, dashed or in hex, and IPv6 with dashes for
    colons (`--1.sslip.io` is `::1`, `fe80--1.sslip.io` is `fe80::1`; the longest part of a label after a dash
    that is one, `www---1` is `::1`)."""
    found: list[Address] = []
    for match in _EMBEDDED_IPV4.finditer(host):
        if match.group(5) is not None:
            found.append(ipaddress.IPv4Address(int(match.group(5), 16)))
        elif all(int(octet) <= 255 for octet in match.groups()[:4]):
            found.append(ipaddress.IPv4Address(".".join(str(int(octet)) for octet in match.groups()[:4])))
    for label in host.split("."):
        for start in (0, *(index + 1 for index, char in enumerate(label) if char == "-")):
            try:
                found.append(ipaddress.IPv6Address(label[start:].replace("-", ":")))
            except ValueError:
                continue
            break  # the longest reading: `2a01-4f8--2` is 2a01:4f8::2, not also 4f8::2
    return found


def _address_reason(address: Address, allow_private: bool) -> str | None:
    """Why `address` may not be reached, if it may not: judged with every IPv4 address it carries."""
    carried: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in (address.ipv4_mapped, address.sixtofour, address.teredo and address.teredo[1]):
            if embedded:
                carried.append(embedded)
        if any(address in network for network in _EMBEDS_LOW_32) and int(address) & 0xFFFFFFFF:
            carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    for candidate in carried:
        shown = "" if candidate is address else f" (it carries {candidate})"
        if candidate in _METADATA_ADDRESSES:
            return f"a cloud metadata address{shown}"
        if allow_private:
            continue
        if candidate.is_loopback:
            return f"a loopback address{shown}"
        if candidate.is_link_local:
            return f"a link-local address{shown}"
        if (
            not candidate.is_global
            or candidate.is_reserved
            or candidate.is_multicast
            or candidate.is_unspecified
            or candidate in _SHARED
            or (isinstance(candidate, ipaddress.IPv6Address) and candidate.is_site_local)
        ):
            return f"a private or reserved address{shown}"
    return None


def check_shell(value: str) -> str | None:
    """Refuse text holding a shell metacharacter or a control character, in any reading (see `readings`)."""
    for view in readings(value):
        match = _SHELL.search(view)
        if match is not None:
            shown = "" if view == value else f" (read as {view!r})"
            return f"the value contains the shell metacharacter {match.group()!r}{shown}"
    return None


def check_storage_url(value: str) -> str | None:
    """Refuse text holding a URL other than http(s) (`file:/`, `s3://`, `redis://`, `jdbc:`, ...), in any reading."""
    for view in readings(value):
        match = _STORAGE_URL.search(view)
        if match is not None:
            return f"the value contains a storage URL ({match.group()!r})"
    return None


def check_operand(value: str) -> str | None:
    """Refuse a command-line operand that a program would take for an option: one that starts with `-` in any
    reading (see `readings`), once blanks, quotes and invisible characters before it are dropped and dash
    look-alikes read as `-`."""
    for view in readings(value):
        # What a shell or Windows' argument parser drops before a word: blanks, quotes; and invisible characters.
        word = view.translate(_DASHES_AND_QUOTES)
        while word and (word[0].isspace() or word[0] in "\"'" or unicodedata.category(word[0]) == "Cf"):
            word = word[1:]
        if word.startswith("-"):
            shown = "" if view == value else f" (read as {view!r})"
            return f"the operand {value!r} starts with '-'{shown}: a program would read it as an option"
    return None
