"""Streamed replies are redacted as the final reply is: a secret cut across deltas is redacted whole."""

from __future__ import annotations

import itertools
import re

import pytest
from gecko_guardrails import Guardrails, StreamRedactor
from gecko_guardrails.stream import CAP, HOLD
from hypothesis import given, settings
from hypothesis import strategies as st

from gecko.core.agent import Agent
from gecko.core.events import EventBus, FinalOutput, TextDelta
from gecko.redaction import REDACTED
from gecko.testing.models import ScriptedModel

PEM_BODY = [
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
    "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo",
]
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_BODY * 4) + "\n-----END RSA PRIVATE KEY-----"

# (secret as written, a piece of it that must never be shown)
SECRETS = [
    ("sk-a1B2c3D4e5F6g7H8i9J0", "a1B2c3D4e5F6"),
    ("AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    ("ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6", "a1B2c3D4e5F6g7H8"),
    ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
    ("redis://app:hunter2@cache:6379/0", "hunter2"),
    ('password = "correct horse battery"', "correct horse"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "dozjgNryP4J3"),
    ("xoxb-1234567890-a1B2c3D4e5F6g7H8", "a1B2c3D4e5F6"),
    ("sk-a1B2c3D4\ne5F6g7H8i9J0", "e5F6g7H8i9J0"),
    ("sk-a1B2\u200bc3D4e5F6g7H8i9J0", "c3D4e5F6g7H8"),
    ("Qm9vdHN0cmFwS2V5MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1u", "Qm9vdHN0cmFwS2V5"),
    (PEM, PEM_BODY[1][:24]),
    ("ann@corp.test", "ann@corp.test"),
    ("+1 415 555 0100", "415 555 0100"),
    ("4111 1111 1111 1111", "4111 1111 1111"),
    ("DE89 3704 0044 0532 0130 00", "3704 0044 0532"),
]
WORDS = ["the", "key", "is", "here:", "see", "below.", "and", "then", "done", "ok,", "a1b2", "release", "v2.1"]
GLUE = [" ", "\n", ". ", ", ", "\n\n", "  "]


def guard() -> Guardrails:
    return Guardrails(roots=(), pii=("email", "phone", "credit_card", "iban"))


def streamed(redactor: StreamRedactor, text: str, cuts: list[int]) -> list[str]:
    """What the redactor passes on when `text` arrives cut at `cuts`, its flush last."""
    bounds = [0, *sorted(set(cuts)), len(text)]
    shown = [redactor.feed(text[start:end]) for start, end in itertools.pairwise(bounds)]
    return [*shown, redactor.flush()]


@st.composite
def replies(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A reply of words and secrets of every kind, with the pieces of those secrets that must not show."""
    parts: list[str] = []
    hidden: list[str] = []
    for _ in range(draw(st.integers(1, 24))):
        if draw(st.integers(0, 3)) == 0:
            secret, piece = draw(st.sampled_from(SECRETS))
            parts.append(secret)
            hidden.append(piece)
        else:
            parts.append(draw(st.sampled_from(WORDS)))
        parts.append(draw(st.sampled_from(GLUE)))
    return "".join(parts), hidden


@settings(max_examples=150, deadline=None)
@given(reply=replies(), data=st.data())
def test_property_the_redacted_deltas_concatenate_to_the_redacted_reply(
    reply: tuple[str, list[str]], data: st.DataObject
) -> None:
    text, hidden = reply
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=60))
    guardrails = guard()
    shown = streamed(StreamRedactor(guardrails.redact), text, cuts)

    assert "".join(shown) == guardrails.redact(text)
    for piece in hidden:
        assert not any(piece in delta for delta in shown)


def test_deltas_are_passed_on_while_the_reply_streams_holding_back_a_bounded_tail() -> None:
    guardrails = guard()
    redactor = StreamRedactor(guardrails.redact)
    text = "the words of a long answer " * 200
    fed = shown = 0
    for piece in re.findall(r"\S+\s*", text):
        fed += len(piece)
        shown += len(redactor.feed(piece))
        assert fed - shown < 2 * HOLD + len(piece)
    assert shown + len(redactor.flush()) == len(text)


def test_a_pem_key_longer_than_the_cap_loses_its_whole_body() -> None:
    # Lower-case body lines: no other rule would redact them, only the open block does.
    body = "\n".join(["abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"] * (2 * CAP // 65))
    text = "the key:\n-----BEGIN PRIVATE KEY-----\n" + body + "\n-----END PRIVATE KEY-----\nkeep it safe"
    guardrails = guard()
    cuts = list(range(0, len(text), 7))
    shown = streamed(StreamRedactor(guardrails.redact), text, cuts)

    whole = "".join(shown)
    assert whole == f"the key:\n-----BEGIN PRIVATE KEY-----{REDACTED}-----END PRIVATE KEY-----\nkeep it safe"
    assert whole == guardrails.redact(text)


def test_a_pem_key_cut_off_by_the_end_of_the_reply_shows_nothing_of_its_body() -> None:
    text = "key:\n-----BEGIN PRIVATE KEY-----\n" + "\n".join(["abcdefghijklmnopqrstuvwxyzabcdefghijkl"] * 400)
    guardrails = guard()
    shown = "".join(streamed(StreamRedactor(guardrails.redact), text, list(range(0, len(text), 5))))
    assert shown == f"key:\n-----BEGIN PRIVATE KEY-----{REDACTED}"


@pytest.mark.parametrize("path", ["lean", "subscribed", "middleware"])
async def test_an_agent_stream_shows_no_secret_cut_across_deltas(guardrails: Guardrails, path: str) -> None:
    guardrails.pii = ("email",)
    bus = EventBus(forward_to_plugins=False)
    if path == "subscribed":
        bus.subscribe(lambda event: None)
    if path == "middleware":
        bus.use_model_middleware(lambda context, call_next: call_next(context))
    answer = f"Your key is sk-a1B2c3D4e5F6g7H8i9J0, mail ann@corp.test.\nThe file:\n{PEM}\nkeep it safe."
    model = ScriptedModel([answer], deltas=lambda text: [text[start : start + 4] for start in range(0, len(text), 4)])

    events = [event async for event in Agent(model, event_bus=bus).stream("key?")]

    deltas = [event.text for event in events if isinstance(event, TextDelta)]
    assert isinstance(events[-1], FinalOutput)
    assert "".join(deltas) == events[-1].output.content == guardrails.redact(answer)
    assert "".join(deltas).count(REDACTED) == 3
    for piece in ["a1B2c3D4", "ann@corp", PEM_BODY[0][:12], PEM_BODY[2][-12:]]:
        assert not any(piece in delta for delta in deltas)


async def test_a_stream_is_shown_as_written_when_output_redaction_is_off(guardrails: Guardrails) -> None:
    guardrails.redact_output = False
    answer = "key sk-a1B2c3D4e5F6g7H8i9J0 here"
    events = [event async for event in Agent(ScriptedModel([answer])).stream("key?")]
    deltas = [event.text for event in events if isinstance(event, TextDelta)]
    assert deltas == ["key", " sk-a1B2c3D4e5F6g7H8i9J0", " here"]
