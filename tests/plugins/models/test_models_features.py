"""An endpoint rejecting a request feature: a typed error naming it, remembered per endpoint and model."""

from __future__ import annotations

import logging

import pytest
from gecko_models import OpenAIChat

from gecko.errors import ModelBadRequestError, ModelRateLimitError, ModelServerError, UnsupportedRequestError
from gecko.plugins.models import ModelRequest, ResponseFormat, RetryPolicy, ToolDefinition
from gecko.testing.server import HTTPReply, OpenAIServer, error
from gecko.types import Message

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
HELLO = [Message.user("Name a city.")]
JSON_SCHEMA = ModelRequest(
    messages=HELLO, response_format=ResponseFormat(type="json_schema", name="City", json_schema=SCHEMA)
)
JSON_OBJECT = ModelRequest(messages=HELLO, response_format=ResponseFormat(type="json_object"))
LOOKUP = ToolDefinition(name="lookup", parameters={"type": "object", "properties": {"q": {"type": "string"}}})
TOOLS = ModelRequest(messages=HELLO, tools=[LOOKUP])
PLAIN = ModelRequest(messages=HELLO)

# Rejections in the shapes OpenAI-compatible servers answer with.
LLAMA_CPP_PYTHON = (
    "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}]"
)
OLLAMA_TOOLS = "registry.ollama.ai/library/gemma:2b does not support tools"
LM_STUDIO_JSON_OBJECT = "'response_format.type' must be 'json_schema' or 'text'"
REJECTIONS = [
    pytest.param(500, LLAMA_CPP_PYTHON, JSON_SCHEMA, "json_schema", id="llama-cpp-python-json-schema"),
    pytest.param(400, LM_STUDIO_JSON_OBJECT, JSON_OBJECT, "json_object", id="lm-studio-json-object"),
    pytest.param(400, OLLAMA_TOOLS, TOOLS, "tools", id="ollama-tools"),
    pytest.param(
        400,
        '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
        TOOLS,
        "tool_choice",
        id="vllm-tool-choice",
    ),
    pytest.param(404, "No endpoints found that support tool use.", TOOLS, "tools", id="gateway-tools"),
    pytest.param(
        400,
        "litellm.UnsupportedParamsError: openai does not support parameters: ['response_format'], for model=m",
        JSON_SCHEMA,
        "json_schema",
        id="gateway-params",
    ),
    pytest.param(
        400,
        "Extra inputs are not permitted: ('body', 'tool_choice')",
        TOOLS,
        "tool_choice",
        id="strict-validator-tool-choice",
    ),
]


def _model(server: OpenAIServer, model: str = "m") -> OpenAIChat:
    retry = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, total_timeout=10.0)
    return OpenAIChat(model=model, api_key="k", api_base=server.base_url, retry=retry)


@pytest.mark.parametrize(("status", "message", "request_", "feature"), REJECTIONS)
async def test_a_rejected_feature_is_a_typed_error_naming_it_and_is_not_retried(
    status: int, message: str, request_: ModelRequest, feature: str
) -> None:
    async with OpenAIServer([error(status, message)], cycle=True) as server:
        with pytest.raises(UnsupportedRequestError) as caught:
            await _model(server).complete(request_)
        # A json_schema request is asked once more with the schema in the json_object form.
        assert len(server.chat_requests()) == (2 if feature == "json_schema" else 1)
    assert caught.value.feature == feature
    assert isinstance(caught.value, ModelBadRequestError)


@pytest.mark.parametrize(
    ("reply", "request_", "raised"),
    [
        pytest.param(
            error(
                400,
                "Invalid schema for response_format 'City': In context=(), 'additionalProperties' is required "
                "to be supplied and to be false.",
            ),
            JSON_SCHEMA,
            ModelBadRequestError,
            id="invalid-schema-is-not-a-rejection-of-json-schema",
        ),
        pytest.param(
            error(400, "Invalid 'tools[0].function.name': string does not match pattern."),
            TOOLS,
            ModelBadRequestError,
            id="one-bad-tool-is-not-a-rejection-of-tools",
        ),
        pytest.param(
            error(500, "CUDA out of memory while applying the response_format grammar"),
            JSON_SCHEMA,
            ModelServerError,
            id="a-crash-is-not-a-rejection",
        ),
        pytest.param(
            error(429, "tools are not supported on the free tier right now, retry later"),
            TOOLS,
            ModelRateLimitError,
            id="rate-limit-stays-a-rate-limit",
        ),
        pytest.param(
            error(400, "response_format is not supported"),
            PLAIN,
            ModelBadRequestError,
            id="a-feature-the-request-did-not-use",
        ),
    ],
)
async def test_other_errors_are_not_taken_for_rejections(
    reply: HTTPReply, request_: ModelRequest, raised: type[Exception]
) -> None:
    async with OpenAIServer([reply], cycle=True) as server:
        model = _model(server)
        with pytest.raises(raised) as caught:
            await model.complete(request_)
        assert not isinstance(caught.value, UnsupportedRequestError)
        assert model.capabilities == OpenAIChat.default_capabilities


async def test_the_rejection_is_remembered_for_the_endpoint_and_model(caplog: pytest.LogCaptureFixture) -> None:
    async with OpenAIServer([error(400, OLLAMA_TOOLS)], cycle=True) as server:
        first, same_endpoint = _model(server), _model(server)
        with caplog.at_level(logging.DEBUG, logger="gecko_models"), pytest.raises(UnsupportedRequestError):
            await first.complete(TOOLS)
        assert len(server.chat_requests()) == 1

        # Another instance on the same endpoint and model: refused before sending, streamed or not.
        with pytest.raises(UnsupportedRequestError, match="not sent again") as caught:
            await same_endpoint.complete(TOOLS)
        assert caught.value.feature == "tools"
        with pytest.raises(UnsupportedRequestError):
            [chunk async for chunk in same_endpoint.stream(TOOLS)]
        assert len(server.chat_requests()) == 1
        assert same_endpoint.capabilities.tools is False
        assert same_endpoint.capabilities.json_schema is True

        # Another model behind the same endpoint has not rejected anything.
        assert _model(server, model="other").capabilities.tools is True
        address = server.url
    rejections = [record for record in caplog.records if "rejects tools" in record.message]
    assert len(rejections) == 1
    assert rejections[0].levelno == logging.DEBUG
    assert address in rejections[0].message


async def test_a_rejected_json_schema_goes_as_json_object_with_the_schema_from_then_on() -> None:
    answers = [error(500, LLAMA_CPP_PYTHON), '{"name": "Paris"}', '{"name": "Rome"}', "plain"]
    async with OpenAIServer(answers) as server:
        model = _model(server)
        first = await model.complete(JSON_SCHEMA)
        later = await _model(server).complete(JSON_SCHEMA)
        plain = await model.complete(PLAIN)
        sent = server.chat_requests()
    assert [first.message.text, later.message.text, plain.message.text] == [
        '{"name": "Paris"}',
        '{"name": "Rome"}',
        "plain",
    ]
    schema_form = {"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA, "strict": True}}
    object_form = {"type": "json_object", "schema": SCHEMA}
    assert [body.get("response_format") for body in sent] == [schema_form, object_form, object_form, None]
    assert model.capabilities.json_schema is True


async def test_an_endpoint_refusing_both_json_forms_is_refused_before_sending_from_then_on() -> None:
    async with OpenAIServer([error(500, LLAMA_CPP_PYTHON), error(400, LM_STUDIO_JSON_OBJECT)]) as server:
        model = _model(server)
        with pytest.raises(UnsupportedRequestError, match="neither") as caught:
            await model.complete(JSON_SCHEMA)
        assert caught.value.feature == "json_schema"
        assert model.capabilities.json_schema is False
        with pytest.raises(UnsupportedRequestError) as again:
            await model.complete(JSON_SCHEMA)
        assert again.value.feature == "json_schema"
        assert len(server.chat_requests()) == 2


async def test_json_object_rejected_before_makes_a_json_schema_rejection_final() -> None:
    async with OpenAIServer([error(400, LM_STUDIO_JSON_OBJECT), error(500, LLAMA_CPP_PYTHON)]) as server:
        model = _model(server)
        with pytest.raises(UnsupportedRequestError):
            await model.complete(JSON_OBJECT)
        with pytest.raises(UnsupportedRequestError, match="neither") as caught:
            await model.complete(JSON_SCHEMA)
        assert caught.value.feature == "json_schema"
        assert len(server.chat_requests()) == 2


async def test_a_rejection_when_opening_a_stream_is_typed_and_remembered() -> None:
    async with OpenAIServer([error(400, OLLAMA_TOOLS)]) as server:
        model = _model(server)
        with pytest.raises(UnsupportedRequestError) as caught:
            [chunk async for chunk in model.stream(TOOLS)]
        assert caught.value.feature == "tools"
        assert model.capabilities.tools is False
        with pytest.raises(UnsupportedRequestError, match="not sent again"):
            await model.complete(TOOLS)
        assert len(server.chat_requests()) == 1
