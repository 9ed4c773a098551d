"""Secret redaction: one `redact`/`redact_url` for every message, log line and model observation."""

from __future__ import annotations

import logging
import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gecko.core.agent import Agent
from gecko.core.events import EventBus
from gecko.core.toolbox import ToolBox, tool
from gecko.errors import InvalidStorageURLError, ModelServerError
from gecko.plugins.models import ModelRequest
from gecko.plugins.storage import StorageURL
from gecko.redaction import (
    REDACTED,
    _lowered,
    _scheme_characters,
    _secret_patterns,
    _sub_at,
    redact,
    redact_url,
    redacting_logger,
)
from gecko.testing.models import FunctionModel, Reply
from gecko.types import Event, ToolCall

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)

LEAKS = {
    "redis URL with a password only": ("redis://:hunter2@cache:6379/0", ["hunter2"]),
    "redis URL with user and password": ("rediss://app:hunter2@cache:6380/1", ["app:", "hunter2"]),
    "password holding '/' and '@'": ("redis://app:hu/nt@er2@cache:6379/0", ["hu/nt", "er2@"]),
    "token as the user part": ("https://ghp_token123@github.example/x", ["ghp_token123"]),
    "postgres DSN URL": ("postgresql://admin:s3cret@db.internal:5432/app", ["admin", "s3cret"]),
    "libpq keyword DSN": ("host=db.internal user=admin password=s3cret dbname=app", ["db.internal", "admin", "s3cret"]),
    "query credentials": ("redis://cache:6379/0?password=s3cret&db=1", ["s3cret"]),
    "PEM private key": (f"key was {PEM} in the file", ["MIIEow", "VTLw7o"]),
    "PEM cut off inside the body": (PEM[:90], ["MIIEow"]),
    "bearer token": ("Authorization: Bearer abcdefgh12345678", ["abcdefgh12345678"]),
}


@pytest.mark.parametrize(("text", "secrets"), LEAKS.values(), ids=LEAKS.keys())
def test_redact_removes_every_secret_and_says_where_it_was(text: str, secrets: list[str]) -> None:
    redacted = redact(text)
    assert REDACTED in redacted
    for secret in secrets:
        assert secret not in redacted


def test_redact_keeps_what_helps_to_debug() -> None:
    assert redact("redis://:pw@cache:6379/0 refused") == f"redis://{REDACTED}@cache:6379/0 refused"
    assert redact("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE----- ok").endswith("----- ok")
    assert redact("sqlite:///./gecko.db is locked") == "sqlite:///./gecko.db is locked"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@cache:6379/0", f"redis://{REDACTED}@cache:6379/0"),
        ("redis://app:p/w@d@cache:6379/0", f"redis://{REDACTED}@cache:6379/0"),
        ("https://api.example/v1?api_key=abc&x=1", f"https://api.example/v1?api_key={REDACTED}&x=1"),
        ("sqlite:///./gecko.db", "sqlite:///./gecko.db"),
        ("http://localhost:8080/v1", "http://localhost:8080/v1"),
    ],
)
def test_redact_url_removes_user_info_and_secret_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_storage_url_never_shows_its_credentials() -> None:
    url = StorageURL.parse("redis://:hunter2@cache:6379/0")
    assert "hunter2" not in repr(url)
    assert url.redacted == f"redis://{REDACTED}@cache:6379/0"
    assert url.netloc == ":hunter2@cache:6379"  # the backend still gets the real URL


@pytest.mark.parametrize("url", ["REDIS://:hunter2@cache/0", "redis//:hunter2@cache/0", "redis://:hunter2@[::1/0"])
def test_malformed_storage_url_errors_hide_credentials(url: str) -> None:
    with pytest.raises(InvalidStorageURLError) as caught:
        StorageURL.parse(url)
    assert "hunter2" not in str(caught.value)


async def test_the_model_and_the_event_log_never_see_a_secret_from_a_tool_or_a_failure() -> None:
    @tool
    async def connect() -> str:
        """Connect."""
        raise ConnectionError("cannot reach postgresql://admin:s3cret@db.internal:5432/app")

    def respond(request: ModelRequest) -> Reply:
        if len(request.messages) == 1:
            return [ToolCall(id="c1", name="connect", arguments="{}")]
        raise ModelServerError("upstream redis://:s3cret@cache:6379/0 failed")

    bus = EventBus(forward_to_plugins=False)
    failures: list[str] = []
    bus.subscribe(lambda event: failures.append(str(event.data["message"])), types=["agent.failed"])
    model = FunctionModel(respond)

    with pytest.raises(ModelServerError):
        await Agent(model, tools=ToolBox([connect]), event_bus=bus).run("connect")

    observation = model.requests[1].messages[-1]
    assert observation.tool_call_id == "c1"
    assert "cannot reach postgresql://[REDACTED]@db.internal" in observation.text
    assert failures == ["upstream redis://[REDACTED]@cache:6379/0 failed"]


async def test_log_lines_and_tracebacks_from_gecko_loggers_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    def failing_subscriber(event: Event) -> None:
        raise ConnectionError("redis://:s3cret@cache:6379/0 is down")

    bus = EventBus(forward_to_plugins=False)
    bus.subscribe(failing_subscriber)
    with caplog.at_level(logging.ERROR, logger="gecko.events"):
        await bus.publish(Event("agent.started", "a", "r1", {}))
    assert "is down" in caplog.text
    assert "s3cret" not in caplog.text


def test_a_redacting_logger_redacts_arguments_too(caplog: pytest.LogCaptureFixture) -> None:
    logger = redacting_logger("gecko.test-redaction")
    with caplog.at_level(logging.WARNING, logger="gecko.test-redaction"):
        logger.warning("cannot open %s", "postgresql://admin:s3cret@db/app")
    assert caplog.messages == [f"cannot open postgresql://{REDACTED}@db/app"]


@pytest.mark.parametrize("text", ['{"n": ' + "9" * 100_000 + "}", "x" * 100_000])
def test_redact_reads_a_huge_word_in_linear_time(text: str) -> None:
    # A hostile model's arguments reach `redact`; the key-name pattern once backtracked over every position.
    assert redact(text) == text


DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
UUID = "123e4567-e89b-12d3-a456-426614174000"
# (text, as redacted; None: left as it is). Hex digests, ids and lower-case names pass unless labelled secrets.
LONG_RUNS = {
    "commit SHA": ("9fceb02d0ae598e95dc970b74767f19372d61af8", None),
    "UUID": (UUID, None),
    "SHA-256 digest": (DIGEST, None),
    "upper-case hex digest": (DIGEST.upper()[:32], None),
    "pytest tmp_path folder": ("/tmp/pytest-of-ci/pytest-1/test_reads_a_file_inside_the_r0", None),
    "snake_case name of 32 or more": ("read_the_file_at_path_2_then_answer", None),
    "mixed-case token of 32": ("Zx9Qm2Lp7Rt4Vw8Ks1Dn6Hb3Jc5Fg0Ya", REDACTED),
    "mixed-case token with dashes": ("Ab3_dEf6-GhI9jKl2MnO5pQr8StU1vWx4", REDACTED),
    "hex digest after a label": (f"token: {DIGEST}", f"token: {REDACTED}"),
    "UUID after a label": (f"api_key={UUID}", f"api_key={REDACTED}"),
}


@pytest.mark.parametrize(("text", "shown"), LONG_RUNS.values(), ids=LONG_RUNS.keys())
def test_a_long_run_is_redacted_when_key_shaped_or_labelled_not_when_a_digest_id_or_name(
    text: str, shown: str | None
) -> None:
    assert redact(f"see {text} now") == f"see {shown or text} now"


# --- each rule tries its pattern only where a match can start (`_Rule.starts`) ---------------------------

# Pieces that make every rule's anchors, labels and boundaries meet: key prefixes, secret words in every case
# (and the non-ASCII letters that ignoring case makes ASCII: U+0130, U+0131, U+017F, U+212A), URL schemes, quotes,
# separators, PEM markers, long key-character runs, and non-ASCII text.
PIECES = [
    *("sk-", "pk-", "rk-", "Sk-", "ghp_", "gho", "github_pat_", "xoxb-", "AKIA", "eyJ", "://", ":", "=", "@", "/"),
    *("?", "#", '"', "'", " ", "\n", "\t", ",", ";", "&", "-", "_", ".", "+", "token", "ToKeN", "to\u212aen"),
    *("secret", "\u017fecret", "api_key", "api-key", "APIKEY", "passw", "password", "pwd", "credential", "auth"),
    *("Authorization", "bearer", "BEARER", "ba\u017fic", "bas\u0130c", "bas\u0131c", "user", "USERNAME", "host"),
    *("hostaddr", "http", "Redis", "a", "Z", "9", "abcdefgh", "ABCDEFGH", "12345678", "a1B2c3D4e5F6g7H8", "x" * 70),
    *("Ab3" * 12, "secretoken", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "é", "中"),
    *("sk-a1B2c3D4e5F6", "ghp_a1B2c3D4e5F6g7H8i9", "github_pat_a1B2c3D4e5F6g7H8i9", "xoxb-a1B2c3D4e5F6g7H8i9"),
    *("AKIAIOSFODNN7EXAMPLE", "eyJhbGciOiJI.eyJzdWIiOiIx.dozjgNryP4J3", "Bearer abcdefgh12345678", "user=admin"),
    *("HOST = db", 'password="a b"', "redis://:pw@h", "https://u:p@h", "Zx9Qm2Lp7Rt4Vw8Ks1Dn6Hb3Jc5Fg0Ya"),
]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_property_each_rule_redacts_as_its_pattern_does_over_the_whole_text(text: str) -> None:
    redacted = redact(text)
    for rule in _secret_patterns():
        expected = rule.pattern.sub(rule.replacement, text)
        if rule.starts is not None:
            assert _sub_at(rule, rule.starts(text, _lowered(text)), text) == expected
        text = expected
    assert redacted == text


SHAPES = [
    ("sk-", "a1B2c3D4e5F6g7H8"),
    ("token=", "hunter2hunter2"),
    ("Pa\u017f\u017fWord: ", "'correct horse'"),
    ("to\u212aen = ", "s3cr3tvalue"),
    ("Authorization: Bearer ", "abcdefgh12345678"),
    ("https://admin:", "pa55word@db.example"),
    ("host=", "db.internal.example"),
    ("ghp_", "a1B2c3D4e5F6g7H8i9J0"),
    ("github_pat_", "a1B2c3D4e5F6g7H8i9J0"),
    ("AKIA", "IOSFODNN7EXAMPLE"),
    ("eyJ", "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w"),
    ("-----BEGIN PRIVATE KEY-----\n", "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMx\n-----END PRIVATE KEY-----"),
    ("", "Zx9Qm2Lp7Rt4Vw8Ks1Dn6Hb3Jc5Fg0Ya"),
]
WORDS = ["The", "service", "reads", "its", "config;", "retries", "3", "times.", "See", "RFC", "(status)", "中文", "—"]


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(WORDS), max_size=30),
    planted=st.lists(st.tuples(st.sampled_from(SHAPES), st.integers(0, 30)), min_size=1, max_size=4),
)
def test_property_every_secret_planted_in_prose_is_gone(
    words: list[str], planted: list[tuple[tuple[str, str], int]]
) -> None:
    for (label, secret), position in planted:
        words.insert(min(position, len(words)), label + secret)
    redacted = redact(" ".join(words) + " ")
    for (_, secret), _ in planted:
        assert secret not in redacted
    assert REDACTED in redacted


# No letter of b h k p x y, no capital, no ':' or '=': no key prefix, secret label, scheme or mixed-case run.
PLAIN = "acdefgijlmnoqrstuvwz0123456789 \n\t.,;!?-_'\"()@#%/é中😀"


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(PLAIN), max_size=300))
def test_property_text_without_secret_anchors_comes_back_unchanged(text: str) -> None:
    assert redact(text) == text


def test_the_lowered_copy_keeps_positions_and_lowers_what_ignoring_case_makes_ascii() -> None:
    # The case-insensitive rules find their words in `_lowered(text)`: it must hold each character at its
    # position, as the ASCII letter a case-insensitive pattern takes it for, and the scheme characters must
    # be those `(?i)[a-z0-9+.-]` matches.
    every = "".join(chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code < 0xE000)
    assert len(_lowered(every)) == len(every)
    for char in re.findall("(?i)[a-z]", every):
        assert re.fullmatch(f"(?i){_lowered(char)}", char), char
    assert _scheme_characters() == set(re.findall("(?i)[a-z0-9+.-]", every))
