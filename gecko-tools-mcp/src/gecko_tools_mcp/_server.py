"""MCP servers as tool sources: their tools become Gecko `Tool`s with strict validation."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TextIO, TypedDict

import anyio

from gecko.core.toolbox import Tool
from gecko.errors import ConfigurationError, ToolArgumentsError, ToolExecutionError, ToolServerError
from gecko.redaction import redact, redact_url
from gecko_tools_mcp._connection import Connection

if TYPE_CHECKING:
    import mcp_types
    from jsonschema.protocols import Validator
    from mcp import Client
    from typing_extensions import Unpack

    from gecko_tools_mcp._guard import ProtocolGuard

__all__ = ("MAX_DESCRIPTION_CHARS", "MAX_SCHEMA_CHARS", "MCPServer", "MCPServerHTTP", "MCPServerStdio", "ServerOptions")

MAX_DESCRIPTION_CHARS = 2_000
"""Characters of a server's tool description the model reads; a description is untrusted text."""

MAX_SCHEMA_CHARS = 100_000
"""Characters of a tool's input schema (as JSON); a larger one is refused, since the model reads it every turn."""

_MAX_REPORTED_ERRORS = 8
_INVALID_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


class ServerOptions(TypedDict, total=False):
    """How a server's tools join an agent: the keyword options every `MCPServer` takes (see its `__init__`)."""

    prefix: str | None
    include: Collection[str] | None
    requires_approval: bool | Collection[str]
    timeout: float | None
    connect_timeout: float
    protocol: str


class MCPServer:
    """The tools of one MCP server, for any agent: `Agent(model, tools=[MCPServerStdio(...), my_tool])`.

    The agent connects at its first run (or at `async with agent:`) and disconnects in
    `agent.aclose()`; one server object may serve several agents (it stays connected while any of
    them is open). A connection that breaks (the process died, the HTTP session was dropped) is
    made again at the next call; a call in flight when it broke fails, since it may or may not
    have run.
    """

    def __init__(
        self,
        *,
        prefix: str | None = None,
        include: Collection[str] | None = None,
        requires_approval: bool | Collection[str] = False,
        timeout: float | None = None,
        connect_timeout: float = 30.0,
        protocol: str = "auto",
    ) -> None:
        """Describe how the server's tools join an agent.

        Args:
            prefix: Put before every tool name (`prefix_name`), to keep two servers' tools apart.
            include: Only the tools with these (server-side) names; all when None.
            requires_approval: True for every tool, or the server-side names of the tools a run
                must pause for before calling.
            timeout: Seconds one call may take; None uses the agent's toolbox default.
            connect_timeout: Seconds to connect and list the tools.
            protocol: How to agree on the protocol version, as the SDK's `Client(mode=...)`:
                `"auto"` (discover, falling back to the initialize handshake), `"legacy"` (the
                handshake of servers before 2026), or a version string.
        """
        if connect_timeout <= 0:
            raise ConfigurationError(f"connect_timeout must be positive seconds, got {connect_timeout!r}")
        if prefix is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", prefix):
            raise ConfigurationError(f"MCP tool prefix {prefix!r} must match [A-Za-z0-9_-]{{1,32}}")
        self.prefix = prefix
        self.include = None if include is None else frozenset(include)
        self.requires_approval = requires_approval
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.protocol = protocol
        self._connection: Connection | None = None
        self._users = 0
        self._lock = anyio.Lock()

    def _open_client(self, guard: ProtocolGuard) -> AbstractAsyncContextManager[Client]:
        """An un-entered MCP client for this server's transport, the transport watched by `guard`."""
        raise NotImplementedError

    def _describe(self) -> str:
        """The server as error messages name it (no credentials)."""
        raise NotImplementedError

    # --- ToolSource ------------------------------------------------------------------------

    async def open(self) -> Sequence[Tool]:
        """Connect (unless another agent already did) and return the server's tools.

        Raises:
            ToolServerError: The server cannot be reached, or its tool list breaks the protocol.
            ConfigurationError: Two of its tools map to one Gecko name (use a prefix or `include`).
        """
        async with self._lock:
            if self._users == 0 or self._connection is None or not self._connection.alive:
                await self._connect()
            self._users += 1
        try:
            with anyio.move_on_after(self.connect_timeout) as listing_scope:
                listing = await self._list_tools()
            if listing_scope.cancelled_caught:
                raise ToolServerError(
                    f"MCP server {self._describe()} did not list its tools within {self.connect_timeout:g} s"
                )
            return self._to_tools(listing)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def aclose(self) -> None:
        """Release this agent's use; the last one to close disconnects (the process is stopped)."""
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._connection is not None:
                connection, self._connection = self._connection, None
                await connection.stop()

    # --- connection ------------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._connection is not None:
            await self._connection.stop()
            self._connection = None
        connection = Connection(self._open_client)
        try:
            with anyio.fail_after(self.connect_timeout):
                await connection.start()
        except BaseException as exc:  # timed out, failed, or the caller was cancelled: no half-open server left
            await connection.stop()
            if isinstance(exc, Exception) and connection.guard.violation is not None:
                raise ToolServerError(
                    f"cannot connect to MCP server {self._describe()}: {redact(connection.guard.violation)}"
                ) from None
            if isinstance(exc, TimeoutError):
                raise ToolServerError(
                    f"MCP server {self._describe()} did not answer within {self.connect_timeout:g} s"
                ) from None
            if isinstance(exc, Exception):
                raise ToolServerError(f"cannot connect to MCP server {self._describe()}: {_error_text(exc)}") from exc
            raise
        self._connection = connection

    async def _live(self) -> Connection:
        """The live connection, connecting again when the last one broke."""
        async with self._lock:
            if self._users == 0:
                raise ToolServerError(f"MCP server {self._describe()} is closed; its agent was closed")
            if self._connection is None or not self._connection.alive:
                await self._connect()
            assert self._connection is not None
            return self._connection

    async def _broken(self, connection: Connection) -> None:
        """Forget `connection` after its transport failed, so the next call reconnects."""
        async with self._lock:
            if self._connection is connection:
                self._connection = None
                await connection.stop()

    async def _list_tools(self) -> list[mcp_types.Tool]:
        connection = await self._live()
        client = connection.client
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        try:
            for _ in range(100):  # a server whose pages never end cannot hang the agent
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    return tools
        except Exception as exc:  # an error reply, a broken transport, or a listing that breaks the protocol
            reason = redact(connection.guard.violation or "") or _error_text(exc)
            raise ToolServerError(f"MCP server {self._describe()} failed to list its tools: {reason}") from exc
        raise ToolServerError(f"MCP server {self._describe()} listed more than 100 pages of tools")

    # --- tools -----------------------------------------------------------------------------

    def _to_tools(self, listing: Sequence[mcp_types.Tool]) -> list[Tool]:
        tools: list[Tool] = []
        owners: dict[str, str] = {}
        for spec in listing:
            if self.include is not None and spec.name not in self.include:
                continue
            name = self._gecko_name(spec.name)
            if name in owners:
                raise ConfigurationError(
                    f"MCP tools {owners[name]!r} and {spec.name!r} of {self._describe()} both become {name!r}; "
                    "pass include=... to choose one"
                )
            owners[name] = spec.name
            tools.append(self._to_tool(name, spec))
        return tools

    def _gecko_name(self, server_name: str) -> str:
        name = _INVALID_NAME_CHARACTERS.sub("_", server_name)
        if self.prefix:
            name = f"{self.prefix}_{name}"
        return name[:64] or "_"

    def _to_tool(self, name: str, spec: mcp_types.Tool) -> Tool:
        from jsonschema import Draft202012Validator, FormatChecker, SchemaError
        from jsonschema.validators import validator_for

        schema = dict(spec.input_schema)
        if schema.get("type") != "object":
            raise ToolServerError(
                f"MCP tool {spec.name!r} of {self._describe()}: its input schema is not an object schema"
            )
        if len(json.dumps(schema, ensure_ascii=False)) > MAX_SCHEMA_CHARS:
            raise ToolServerError(
                f"MCP tool {spec.name!r} of {self._describe()}: its input schema is longer than "
                f"{MAX_SCHEMA_CHARS} characters as JSON"
            )
        # Strict like local tools: an argument the schema does not name is refused.
        schema.setdefault("additionalProperties", False)
        schema.setdefault("properties", {})
        try:
            validator_class = validator_for(schema, default=Draft202012Validator)
            validator_class.check_schema(schema)
        except SchemaError as exc:
            raise ToolServerError(
                f"MCP tool {spec.name!r} of {self._describe()} has an invalid input schema: {exc.message[:200]}"
            ) from None
        validator = validator_class(schema, format_checker=FormatChecker())
        description = (spec.description or spec.title or "")[:MAX_DESCRIPTION_CHARS]
        approval = (
            self.requires_approval if isinstance(self.requires_approval, bool) else spec.name in self.requires_approval
        )

        async def call(**arguments: Any) -> str:
            return await self._call(spec.name, arguments)

        return Tool.from_schema(
            call,
            name=name,
            description=description,
            parameters=schema,
            validate=lambda arguments: _validate(validator, name, arguments),
            timeout=self.timeout,
            requires_approval=approval,
        )

    async def _call(self, server_name: str, arguments: dict[str, Any]) -> str:
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED
        from pydantic import ValidationError

        connection = await self._live()
        try:
            try:
                result = await connection.client.call_tool(server_name, arguments)
            except MCPError as exc:
                if not self._session_dropped(exc):
                    raise
                # The server forgot the session (it restarted): the call never ran, so it is sent
                # again once on a new session.
                await self._broken(connection)
                connection = await self._live()
                result = await connection.client.call_tool(server_name, arguments)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                await self._broken(connection)
                if connection.guard.violation is not None:
                    raise ToolServerError(
                        f"MCP server {self._describe()} broke the protocol during the call: "
                        f"{redact(connection.guard.violation)}; the call may or may not have run, the next call "
                        "reconnects"
                    ) from None
                raise ToolServerError(
                    f"MCP server {self._describe()} closed the connection during the call (it may or may not "
                    "have run); the next call reconnects"
                ) from None
            raise ToolExecutionError(f"MCP tool {server_name!r} failed: {_error_text(exc)}") from None
        except ValidationError as exc:  # a result that is not a CallToolResult (content not a list, unknown blocks)
            raise ToolServerError(
                f"MCP tool {server_name!r} returned a result that breaks the protocol: {_error_text(exc)}"
            ) from None
        text = _result_text(result)
        if result.is_error:
            raise ToolExecutionError(f"MCP tool {server_name!r} reported an error: {text or '(no text)'}")
        return text

    def _session_dropped(self, error: Exception) -> bool:
        """Whether `error` says the server no longer knows the session, so the request did not run."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"


class MCPServerStdio(MCPServer):
    """An MCP server run as a subprocess, spoken to over its stdin and stdout."""

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        errlog: TextIO | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        """Run `command args...` as the server.

        Args:
            command: The executable.
            args: Its arguments.
            env: Variables added to a minimal default environment (the SDK's: PATH, HOME, ...).
            cwd: Its working directory.
            errlog: Where its standard error goes; the parent's standard error when None.
            options: `ServerOptions` (prefix, include, requires_approval, timeout, ...): see `MCPServer`.
        """
        super().__init__(**options)
        self.command = command
        self.args = tuple(args)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.errlog = errlog

    def _open_client(self, guard: ProtocolGuard) -> AbstractAsyncContextManager[Client]:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        # "replace": with the SDK's strict decoding, one byte that is not UTF-8 on the server's
        # stdout kills its reader while the process lives on, and closing then waits forever.
        parameters = StdioServerParameters(
            command=self.command, args=list(self.args), env=self.env, cwd=self.cwd, encoding_error_handler="replace"
        )
        return Client(guard.watch(stdio_client(parameters, errlog=self.errlog or sys.stderr)), mode=self.protocol)

    def _describe(self) -> str:
        return " ".join((self.command, *self.args))[:120]


class MCPServerHTTP(MCPServer):
    """An MCP server reached over streamable HTTP at `url` (e.g. `http://127.0.0.1:8000/mcp`)."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        """Reach the server at `url`.

        Args:
            url: The endpoint, `http://` or `https://`.
            headers: Sent with every request (an `Authorization` header, say); never shown in errors.
            options: `ServerOptions` (prefix, include, requires_approval, timeout, ...): see `MCPServer`.

        Raises:
            ConfigurationError: The URL is not an http(s) URL with a host.
        """
        super().__init__(**options)
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"MCP server URL {redact_url(url)!r} must be http:// or https:// with a host")
        self.url = url
        self.headers = dict(headers or {})

    @asynccontextmanager
    async def _open_client(self, guard: ProtocolGuard) -> AsyncIterator[Client]:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        # The SDK's own timeouts (a response stream may stay open for minutes), plus our headers.
        timeout = httpx2.Timeout(self.connect_timeout, read=300.0)
        async with (
            httpx2.AsyncClient(headers=self.headers, timeout=timeout) as http,
            Client(guard.watch(streamable_http_client(self.url, http_client=http)), mode=self.protocol) as client,
        ):
            yield client

    def _describe(self) -> str:
        return redact_url(self.url)

    def _session_dropped(self, error: Exception) -> bool:
        from mcp import MCPError
        from mcp_types import INVALID_REQUEST

        # A 404 for a request carrying a session id ("Session terminated" from the SDK's client,
        # "Session not found" in the server's own body): the spec's signal to start a new session.
        return isinstance(error, MCPError) and error.code == INVALID_REQUEST and "session" in error.message.lower()


def _validate(validator: Validator, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """`arguments` when they match the tool's schema; otherwise a `ToolArgumentsError` for the model."""
    try:
        errors = sorted(validator.iter_errors(arguments), key=lambda error: list(error.absolute_path))
    except Exception as exc:  # a `$ref` that loops or points nowhere: the server's schema cannot check anything
        raise ToolArgumentsError(
            f"Invalid arguments for tool {name!r}: its schema cannot check them ({type(exc).__name__}: "
            f"{_error_text(exc)[:160]}). Call another tool or answer without it."
        ) from None
    if not errors:
        return arguments
    parts = []
    for error in errors[:_MAX_REPORTED_ERRORS]:
        location = ".".join(str(item) for item in error.absolute_path) or "(arguments)"
        parts.append(f"{location}: {error.message[:160]}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"... and {len(errors) - _MAX_REPORTED_ERRORS} more")
    raise ToolArgumentsError(
        f"Invalid arguments for tool {name!r}: {'; '.join(parts)}. "
        "Fix the arguments to match the tool's schema and call it again."
    )


def _result_text(result: mcp_types.CallToolResult) -> str:
    """What the model reads of a tool result: its text blocks, and a note for each other block."""
    from mcp_types import EmbeddedResource, ResourceLink, TextContent, TextResourceContents

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
            parts.append(block.resource.text)
        elif isinstance(block, ResourceLink):
            parts.append(f"[resource {block.uri}]")
        else:
            mime = getattr(block, "mime_type", None) or getattr(getattr(block, "resource", None), "mime_type", None)
            parts.append(f"[{block.type} content{f' ({mime})' if mime else ''} not shown]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


def _error_text(exc: BaseException) -> str:
    """The error as a model or a log may read it: redacted, at most 300 characters.

    An exception group (the SDK's task groups raise them) reads as its first leaf error.
    """
    grouped = getattr(exc, "exceptions", None)  # an exception group (the builtin is 3.11+)
    while isinstance(grouped, tuple) and grouped:
        exc = grouped[0]
        grouped = getattr(exc, "exceptions", None)
    return redact(str(exc) or type(exc).__name__)[:300]
