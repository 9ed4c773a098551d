"""A raw JSON-RPC MCP server over stdio that misbehaves as `python mcp_hostile_server.py MODE` says.

Built without the SDK so it can send what the SDK's server never would.
"""

from __future__ import annotations

import json
import sys
import time

MODE = sys.argv[1]
OUT = sys.stdout.buffer

FINE = {"name": "fine", "description": "Works.", "inputSchema": {"type": "object", "properties": {}}}
EXTRA_TOOLS = {
    "string_schema": [{"name": "bad", "inputSchema": {"type": "string"}}],
    "ref_loop": [
        {
            "name": "loop",
            "inputSchema": {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/a"}},
                "$defs": {"a": {"$ref": "#/$defs/a"}},
            },
        }
    ],
    "remote_ref": [
        {
            "name": "remote",
            "inputSchema": {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/a.json"}}},
        }
    ],
    "huge_schema": [
        {
            "name": "huge",
            "inputSchema": {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(20_000)}},
        }
    ],
}


def send(message: dict[str, object]) -> None:
    OUT.write(json.dumps(message).encode() + b"\n")
    OUT.flush()


if MODE == "exit":
    sys.exit(0)
if MODE == "not_utf8":
    OUT.write(b"\xff\xfe garbage before the protocol\n")  # then it speaks the protocol
    OUT.flush()

for line in sys.stdin.buffer:
    message = json.loads(line)
    if "id" not in message:
        continue
    method, request_id = message.get("method"), message["id"]
    if method == "initialize":
        result: dict[str, object] = {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "hostile", "version": "1"},
        }
    elif method == "tools/list":
        if MODE == "hang":
            time.sleep(3600)
        result = {"tools": [FINE, *EXTRA_TOOLS.get(MODE, [])]}
    elif method == "tools/call":
        if MODE == "not_utf8":
            reply = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"\xff ok"}]}}\n' % request_id
            OUT.write(reply)
            OUT.flush()
            continue
        result = {"content": [{"type": "text", "text": "done"}]}
    else:
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "Method not found"}})
        continue
    send({"jsonrpc": "2.0", "id": request_id, "result": result})
