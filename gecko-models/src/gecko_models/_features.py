"""Request features an OpenAI-compatible endpoint refuses, read from its error answers and remembered.

Compatible servers (llama.cpp and llama-cpp-python, vLLM, LM Studio, Ollama, gateways) accept
different request shapes: llama-cpp-python answers a `json_schema` response format with
HTTP 500 "Input should be 'text' or 'json_object'", LM Studio refuses `json_object`, Ollama
refuses `tools` for models without tool support, vLLM refuses `tool_choice` unless started with a
tool parser. An answer counts as such a rejection when its status is a client error (or 500/501,
which some servers use for request validation), it names a feature the request used, and it says
the feature is not accepted. Errors about a value inside a feature (an invalid schema, one bad tool
name) are not rejections of the feature.

A rejection is remembered for the rest of the process, keyed by endpoint and model, so later
requests do not send the rejected shape again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any, Literal

from gecko.redaction import redact_url

__all__ = (
    "Feature",
    "Endpoint",
    "DESCRIPTIONS",
    "used_features",
    "rejected_feature",
    "remember",
    "rejected",
    "display",
)

Feature = Literal["json_schema", "json_object", "tools", "tool_choice"]

Endpoint = tuple[str, str]
"""(api_base, model) — one model behind one endpoint."""

DESCRIPTIONS: Mapping[str, str] = {
    "json_schema": "a json_schema response_format",
    "json_object": "a json_object response_format",
    "tools": "tools",
    "tool_choice": "tool_choice",
}
"""How each feature is named in messages."""

_RESPONSE_FORMAT = re.compile(r"response[_ .]?format|json[_ ]?schema|json[_ ]?object|structured[_ ]outputs?", re.I)
# Checked before tools: "tool_choice" also mentions a tool.
_MENTIONS: tuple[tuple[frozenset[Feature], re.Pattern[str]], ...] = (
    (frozenset({"tool_choice"}), re.compile(r"tool[_ ]?choice", re.I)),
    (frozenset({"json_schema", "json_object"}), _RESPONSE_FORMAT),
    (frozenset({"tools"}), re.compile(r"\btools?\b|tool[_ ]?(?:use|calls?|calling)|function[_ ]?call(?:ing|s)?", re.I)),
)

_REJECTION = re.compile(
    r"not supported|unsupported|(?:does|do|is) ?n[o']t support|not support|not (?:enabled|available|implemented)"
    r"|requires|input should be|literal_error|extra[_ ](?:inputs|fields|forbidden)|not permitted|unrecogni[sz]ed"
    r"|unknown (?:parameter|field|argument|key)|not allowed|must be (?:one of )?['\"`]|no endpoints found"
    r"|enabled only|only (?:supported|available)|cannot be used",
    re.I,
)

# A complaint about a value inside the feature: the feature itself is accepted.
_VALUE_ERROR = re.compile(
    r"invalid schema|additionalproperties|is required to be supplied|\btools\[\d+\]|function\.(?:name|parameters)"
    r"|context (?:length|window)",
    re.I,
)


def used_features(arguments: Mapping[str, Any]) -> tuple[Feature, ...]:
    """The optional features a chat request (in litellm's keyword form) uses."""
    features: list[Feature] = []
    response_format = arguments.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_schema", "json_object"):
        features.append(response_format["type"])
    if arguments.get("tools"):
        features.append("tools")
    if arguments.get("tool_choice") is not None:
        features.append("tool_choice")
    return tuple(features)


def rejected_feature(status: int | None, detail: str, used: tuple[Feature, ...]) -> Feature | None:
    """The feature of `used` that an error answer says the endpoint does not accept, if any.

    Args:
        status: the HTTP status of the answer.
        detail: the error text (the server's message, as the client reports it).
        used: the features the request used.
    """
    if not used or status is None:
        return None
    if not (400 <= status < 500 or status in (500, 501)) or status in (401, 403, 408, 429):
        return None
    if _REJECTION.search(detail) is None or _VALUE_ERROR.search(detail) is not None:
        return None
    for features, mention in _MENTIONS:
        named = [feature for feature in used if feature in features]
        if named and mention.search(detail):
            return named[0]
    return None


_lock = threading.Lock()
_rejected: dict[Endpoint, frozenset[str]] = {}


def remember(endpoint: Endpoint, feature: str) -> bool:
    """Record that `endpoint` rejects `feature`; False when it was known already."""
    with _lock:
        known = _rejected.get(endpoint, frozenset())
        if feature in known:
            return False
        _rejected[endpoint] = known | {feature}
        return True


def rejected(endpoint: Endpoint) -> frozenset[str]:
    """The features `endpoint` has rejected in this process."""
    with _lock:
        return _rejected.get(endpoint, frozenset())


def display(api_base: str | None) -> str:
    """The endpoint for messages and logs, credentials redacted."""
    return redact_url(api_base) if api_base else "the provider's default endpoint"
