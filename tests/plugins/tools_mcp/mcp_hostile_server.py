"""A raw JSON-RPC MCP server over stdio that misbehaves as `python mcp_hostile_server.py MODE [PID_FILE]` says.

Built without the SDK so it can send what the SDK's server never would. Each process appends its pid
to PID_FILE.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

MODE = sys.argv[1]
OUT = sys.stdout.buffer
if len(sys.argv) > 2:
    with Path(sys.argv[2]).open("a") as pids:
        pids.write(f"{os.getpid()}\n")

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
    "late_reply": [{"name": "slow", "inputSchema": {"type": "object"}}],
    "no_schema": [{"name": "bare"}],
    "null_schema": [{"name": "nulled", "inputSchema": None}],
    "list_schema": [{"name": "listed", "inputSchema": [1, 2]}],
    "int_name": [{"name": 7, "inputSchema": {"type": "object"}}],
    "no_name": [{"inputSchema": {"type": "object"}}],
    "empty_names": [{"name": "", "inputSchema": {"type": "object"}}, {"name": "", "inputSchema": {"type": "object"}}],
    "long_names": [{"name": "x" * 70 + suffix, "inputSchema": {"type": "object"}} for suffix in "ab"],
    "bad_properties": [{"name": "props", "inputSchema": {"type": "object", "properties": [1]}}],
    "description_not_text": [{"name": "numbered", "description": 5, "inputSchema": {"type": "object"}}],
    "huge_schema": [
        {
            "name": "huge",
            "inputSchema": {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(20_000)}},
        }
    ],
}

# Replies to tools/list (`ID` is the request id) that break JSON-RPC or the listing's shape.
LIST_REPLIES = {
    "list_not_json": b"{not json\n",
    "list_tools_not_list": b'{"jsonrpc":"2.0","id":ID,"result":{"tools":{"a":1}}}\n',
    "list_result_null": b'{"jsonrpc":"2.0","id":ID,"result":null}\n',
    "list_error_bad_code": b'{"jsonrpc":"2.0","id":ID,"error":{"code":"x","message":5}}\n',
    "list_error": b'{"jsonrpc":"2.0","id":ID,"error":{"code":-32000,"message":"listing broke"}}\n',
    "list_error_null_id": b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}\n',
    "list_deep_schema": b'{"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"deep","inputSchema":'
    + b'{"type":"object","properties":{"a":' * 3000
    + b"{}"
    + b"}}" * 3000
    + b"}]}}\n",
    "list_wrong_version": b'{"jsonrpc":"1.0","id":ID,"result":{"tools":[]}}\n',
}
# Replies to tools/call (`ID` is the request id); `call_exit` and `call_hang` send none.
CALL_REPLIES = {
    "call_exit": b"",
    "call_hang": b"",
    "call_not_json": b"\x00\x01 not json at all\n",
    "call_wrong_id": b'{"jsonrpc":"2.0","id":987654,"result":{"content":[]}}\n',
    "call_string_id": b'{"jsonrpc":"2.0","id":"ID","result":{"content":[{"type":"text","text":"as string"}]}}\n',
    "call_wrong_version": b'{"jsonrpc":"1.0","id":ID,"result":{"content":[]}}\n',
    "call_no_version": b'{"id":ID,"result":{"content":[]}}\n',
    "call_content_not_list": b'{"jsonrpc":"2.0","id":ID,"result":{"content":"text"}}\n',
    "call_unknown_block": b'{"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"video","data":"x"}]}}\n',
    "call_image": b'{"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"image","data":"%%%",'
    b'"mimeType":"image/png"}]}}\n',
    "call_huge": b'{"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"text","text":"'
    + b"y" * 3_000_000
    + b'"}]}}\n',
    "call_structured_only": b'{"jsonrpc":"2.0","id":ID,"result":{"content":[],"structuredContent":{"a":[1,2]}}}\n',
    "call_error_reply": b'{"jsonrpc":"2.0","id":ID,"error":{"code":-32602,"message":"no such tool"}}\n',
    "call_result_null": b'{"jsonrpc":"2.0","id":ID,"result":null}\n',
    "call_error_number_message": b'{"jsonrpc":"2.0","id":ID,"error":{"code":-32000,"message":5}}\n',
    "call_error_object_message": b'{"jsonrpc":"2.0","id":ID,"error":{"code":-32000,"message":{"a":1}}}\n',
    "call_error_no_message": b'{"jsonrpc":"2.0","id":ID,"error":{"code":-32000}}\n',
    "call_text_not_string": b'{"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"text","text":5}]}}\n',
    "call_is_error_not_bool": b'{"jsonrpc":"2.0","id":ID,"result":{"content":[],"isError":"yes"}}\n',
    "call_is_error_no_content": b'{"jsonrpc":"2.0","id":ID,"result":{"content":[],"isError":true}}\n',
}


def send(message: dict[str, object]) -> None:
    OUT.write(json.dumps(message).encode() + b"\n")
    OUT.flush()


if MODE == "exit":
    sys.exit(0)
if MODE == "banner":
    OUT.write(b"server ready\n")  # on stdout, where only protocol messages belong; then it speaks the protocol
    OUT.flush()

for line in sys.stdin.buffer:
    message = json.loads(line)
    if MODE == "late_reply" and message.get("method") == "notifications/cancelled":
        # the reply to a call the client gave up on, sent only once the client has given up on it
        late_id = message["params"]["requestId"]
        send({"jsonrpc": "2.0", "id": late_id, "result": {"content": [{"type": "text", "text": "late"}]}})
    if "id" not in message:
        continue
    method, request_id = message.get("method"), message["id"]
    if method == "tools/call" and MODE == "late_reply" and message["params"]["name"] == "slow":
        continue  # answered once cancelled, above
    if method == "initialize" and MODE == "init_hang":
        time.sleep(3600)
    if method == "initialize" and MODE == "init_result_not_object":
        send({"jsonrpc": "2.0", "id": request_id, "result": [1, 2]})
        continue
    if method == "initialize":
        result: dict[str, object] = {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "hostile", "version": "1"},
        }
    elif method == "tools/list":
        if MODE == "hang":
            time.sleep(3600)
        if MODE in LIST_REPLIES:
            OUT.write(LIST_REPLIES[MODE].replace(b"ID", b"%d" % request_id))
            OUT.flush()
            continue
        result = {"tools": [FINE, *EXTRA_TOOLS.get(MODE, [])]}
    elif method == "tools/call" and MODE in CALL_REPLIES:
        if MODE == "call_exit":
            sys.exit(1)
        if MODE == "call_hang":
            time.sleep(3600)
        OUT.write(CALL_REPLIES[MODE].replace(b"ID", b"%d" % request_id))
        OUT.flush()
        continue
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
