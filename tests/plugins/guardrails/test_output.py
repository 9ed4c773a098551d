"""Output guards: secrets and configured PII are redacted from model output and tool arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gecko_guardrails import Guardrails, clean
from hypothesis import given, settings
from hypothesis import strategies as st

from gecko.core.agent import Agent
from gecko.core.toolbox import tool
from gecko.redaction import REDACTED
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import AgentOutput, ToolCall

KEY = "sk-" + "a1B2c3D4e5F6g7H8i9J0"


async def post_with(arguments: str) -> tuple[list[str], AgentOutput]:
    """One run whose model calls `post` with the raw `arguments`: the bodies `post` received, and the output."""
    received: list[str] = []

    @tool
    async def post(body: str) -> str:
        """Post a message."""
        received.append(body)
        return "posted"

    model = ScriptedModel([tool_calls_reply(ToolCall(id="c1", name="post", arguments=arguments)), "ok"])
    output = await Agent(model, tools=[post]).run("post it")
    return received, output


async def test_secrets_are_redacted_from_the_final_answer(guardrails: Guardrails) -> None:
    output = await Agent(ScriptedModel([f"Your key is {KEY}, keep it safe."])).run("key?")
    assert output.content == "Your key is [REDACTED], keep it safe."
    assert KEY not in output.messages[-1].text


async def test_secrets_and_pii_are_redacted_from_tool_arguments_as_valid_json(guardrails: Guardrails) -> None:
    guardrails.pii = ("email",)
    received, _ = await post_with(json.dumps({"body": f'mail ann@corp.test, token "{KEY}"'}))
    assert received == ['mail [REDACTED], token "[REDACTED]"']


async def test_redaction_can_be_turned_off(guardrails: Guardrails) -> None:
    guardrails.redact_output = False
    output = await Agent(ScriptedModel([f"key {KEY}"])).run("key?")
    assert output.content == f"key {KEY}"


async def test_arguments_nested_deeper_than_python_recurses_are_redacted_as_text(guardrails: Guardrails) -> None:
    deep = "[" * 100_000 + f'"{KEY}"' + "]" * 100_000
    received, output = await post_with(deep)
    assert received == []  # not valid arguments for `post`: the engine refuses them
    assert KEY not in output.messages[1].tool_calls[0].arguments


HIDDEN_KEYS = [
    # (what the model wrote, the secret's characters that must not survive)
    ("Your key is sk-a1B2\u200bc3D4e5F6g7H8i9J0.", "a1B2c3D4e5F6g7H8i9J0"),
    ("key: sk-a1B2c3D4\ne5F6g7H8i9J0 (keep it)", "e5F6g7H8i9J0"),
    ("sk-a1B2c3D4\n    e5F6g7H8i9J0", "e5F6g7H8i9J0"),
    ("sk-a1B2c3D4\r\ne5F6g7H8\ni9J0k1L2", "i9J0k1L2"),
    ("AKIAIOSFOD\nNN7EXAMPLE", "NN7EXAMPLE"),
    ("AKIA\u200bIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    ("ghp_a1B2c3D4e5F6\ng7H8i9J0k1L2m3N4o5P6", "g7H8i9J0k1L2m3N4o5P6"),
    ("the token is\na1B2c3D4e5F6a7B8c9D0\ne1F2a3B4c5D6e7F8a9B0", "e1F2a3B4c5D6e7F8a9B0"),
    ("\uff53\uff4b-\uff41\uff11\uff22\uff12\uff43\uff13\uff24\uff14\uff45\uff15\uff26\uff16", "a1B2c3D4e5F6"),
    ("sk-a1B2\u00adc3D4\u2060e5F6\U000e0041g7H8i9J0", "a1B2c3D4e5F6"),
    ("mail ann\u200b@corp.test now", "ann@corp.test"),
]


@pytest.mark.parametrize(("text", "secret"), HIDDEN_KEYS)
async def test_hidden_or_split_secrets_are_redacted_from_the_answer(
    guardrails: Guardrails, text: str, secret: str
) -> None:
    guardrails.pii = ("email",)
    output = await Agent(ScriptedModel([text])).run("key?")
    shown = clean(output.content or "").replace("\n", "").replace(" ", "")
    assert REDACTED in shown
    assert not any(secret[start : start + 6] in shown for start in range(len(secret) - 5))


@pytest.mark.parametrize(
    "body",
    [
        json.dumps([KEY]).replace("a1B2", "\\u0061\\u0031B2"),
        json.dumps({"note": {"value": f"sk-a1B2\u200b{KEY[7:]}"}}),
        json.dumps({"note": KEY[:11] + "\n" + KEY[11:]}),
    ],
)
async def test_secrets_inside_json_text_in_tool_arguments_are_redacted(guardrails: Guardrails, body: str) -> None:
    received, _ = await post_with(json.dumps({"body": body}))
    [sent] = received
    assert "e5F6g7H8i9J0" not in clean(sent)
    assert REDACTED in sent


def test_text_without_secrets_keeps_its_hidden_and_fullwidth_characters() -> None:
    guard = Guardrails(roots=(), pii=("email",))
    for text in ["family \U0001f468\u200d\U0001f469\u200d\U0001f467", "\uff21\uff22\uff23 full", "sk-learn is\nnice"]:
        assert guard.redact(text) == text


KEY_PREFIXES = ["sk-", "AKIA", "ghp_", "xoxb-"]


@settings(max_examples=150)
@given(
    prefix=st.sampled_from(KEY_PREFIXES),
    data=st.data(),
)
def test_property_a_key_with_hidden_characters_or_cut_by_line_breaks_is_redacted(
    prefix: str, data: st.DataObject
) -> None:
    guard = Guardrails(roots=())
    size = {"min_size": 16, "max_size": 16} if prefix == "AKIA" else {"min_size": 16, "max_size": 40}
    body = data.draw(st.text(st.sampled_from("ABCDEFGHJKLMNPQRSTUVWXYZ234567"), **size))
    positions = sorted(data.draw(st.sets(st.integers(1, len(body) - 1), max_size=3)))
    pieces = [body[start:end] for start, end in zip([0, *positions], [*positions, len(body)], strict=True)]
    glue = data.draw(st.sampled_from(["\u200b", "\u2060", "\u00ad", "\n", "\n  ", "\r\n", "\ufeff"]))
    text = "here: " + prefix + glue.join(pieces) + " done"
    shown = clean(guard.redact(text)).replace("\n", "").replace(" ", "")
    assert not any(body[start : start + 8] in shown for start in range(len(body) - 7))


async def test_paths_hashes_and_ids_in_tool_arguments_are_not_taken_for_secrets(
    guardrails: Guardrails, tmp_path: Path
) -> None:
    folder = tmp_path / "test_reads_a_file_inside_the_r0" / "notes.txt"
    digest = "9fceb02d0ae598e95dc970b74767f19372d61af8 123e4567-e89b-12d3-a456-426614174000"
    received, _ = await post_with(json.dumps({"body": f"{folder} {digest}"}))
    assert received == [f"{folder} {digest}"]


async def test_key_shapes_and_labelled_digests_in_tool_arguments_are_still_redacted(guardrails: Guardrails) -> None:
    body = "k Zx9Qm2Lp7Rt4Vw8Ks1Dn6Hb3Jc5Fg0Ya, token: 9fceb02d0ae598e95dc970b74767f19372d61af8"
    received, _ = await post_with(json.dumps({"body": body}))
    assert received == ["k [REDACTED], token: [REDACTED]"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # Clean shows a secret, or only the visible one: the cleaned text, redacted.
        ("\uff46\uff55\uff4c\uff4c width, key " + KEY, "full width, key [REDACTED]"),
        ("zero\u200bwidth password=hunter2", "zerowidth password=[REDACTED]"),
        ("cut: sk-a1B2c3D4\ne5F6g7H8i9J0 and \uff21", "cut: [REDACTED] and A"),
        ("s\u200bk-a1B2c3D4e5F6g7H8i9J0 here", "[REDACTED] here"),
        # Nothing hid: the text as written, redacted.
        ("\uff21\uff22\uff23 and nothing secret", "\uff21\uff22\uff23 and nothing secret"),
        ("token=abc " + KEY, "token=[REDACTED] [REDACTED]"),
        ("line one\nline two\u200b", "line one\nline two\u200b"),
    ],
)
def test_redact_returns_the_cleaned_text_only_when_cleaning_showed_something(text: str, shown: str) -> None:
    assert Guardrails(roots=()).redact(text) == shown


# Letters of no key prefix, secret label or scheme, and no ':' or '=', also in fullwidth and with invisible
# characters: cleaned, such a text shows no secret, so it comes back as written.
PLAIN = "acdefgijlmnoqrstuvwz0123456789 \n.,;!?-_'()@#%/é中\uff41\uff43\uff10\uff0c\u200b\u2060\u00ad"


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(PLAIN), max_size=300))
def test_property_text_without_secret_anchors_comes_back_as_written(text: str) -> None:
    assert Guardrails(roots=(), pii=("email",)).redact(text) == text
