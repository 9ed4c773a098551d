"""Gecko's public test kit: deterministic models, a pytest plugin, conformance suites and a
local OpenAI-protocol server.

- `gecko.testing.models`: `ScriptedModel`, `FunctionModel` and reply builders (no network).
- `gecko.testing.server`: `OpenAIServer`, a real HTTP server on 127.0.0.1 answering OpenAI chat
  completions (JSON and streamed) and embeddings from a script, for any plugin that speaks the
  OpenAI protocol.
- `gecko.testing.processes`: `ServerProcess` and `free_port`, for tests that start a real server
  (a model server, a database, an MCP server) as a subprocess on a loopback port.
- `gecko.testing.embedders`: `HashingEmbedder`, a deterministic embedder with no model file.
- `gecko.testing.documents`: `pdf_bytes`, a minimal PDF for loader tests.
- `gecko.testing.conformance`: the suites every storage, vector-store and model backend passes.
- `gecko.testing.pytest_plugin`: opt-in fixtures.

Nothing in the engines imports this package.
"""
