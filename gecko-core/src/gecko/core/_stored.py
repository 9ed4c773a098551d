"""The boundary of everything Gecko stores for later: integrity seals and validated formats.

Every record an engine stores to resume from (a workflow snapshot, journal entry or start count,
an agent's saved session) carries a `seal` field: a SHA-256 digest, or an HMAC-SHA256 when a
checkpoint key is configured, over the record's JSON text as stored (its own key order, compact)
together with the storage key and the version it is written at; records sealed over the key-sorted
JSON (written by earlier versions) are still accepted. Reading checks the shape first (so a wrong field is named), then
the seal.

What the seal protects against:

- Without a key (digest): accidental corruption and naive edits (a record changed by hand or by a
  tool that does not recompute the digest). Not a deliberate attacker: the digest scheme is public,
  so anyone who can write the storage can recompute it.
- With a key (`checkpoint_key=` or the `GECKO_CHECKPOINT_KEY` environment variable, at least 16
  bytes): deliberate edits by anyone without the key (status set to completed, pending nodes
  emptied, outputs swapped, approvals changed), and records moved between sessions, workflows or
  journal slots (the storage key, which names the workflow, session and slot, is bound), or
  written back at another version of their key (the version is bound, so an older record replayed
  through the storage API, which always moves the version on, fails).

What it does not protect against: a rollback of the storage itself (a restored backup, or keys
and versions reset by hand) to an older state that was genuinely written, deletion of a whole
session, and anyone who holds the key. Records written with another key, or without one while a
key is configured, are refused (a key rotation makes unfinished checkpoints unreadable: finish
them first). Nothing is ever imported or evaluated from stored data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gecko.errors import ConfigurationError, CorruptCheckpointError, InvalidValueError
from gecko.plugins.storage import JSONText, encode_value
from gecko.types import Message

__all__ = (
    "KEY_ENV",
    "SEAL_FIELD",
    "Sealer",
    "StoredAgentSession",
    "StoredModel",
    "describe_invalid",
    "open_stored",
    "resolve_checkpoint_key",
)

KEY_ENV: Final = "GECKO_CHECKPOINT_KEY"
SEAL_FIELD: Final = "seal"
_MIN_KEY_BYTES = 16
_DIGEST = "sha256:"
_MAC = "hmac-sha256:"
# Separates the binding context from the record, so no record text can imitate another context.
_DOMAIN = b"gecko-seal/1\x00"
_CONTEXTS_KEPT = 256


class StoredModel(BaseModel):
    """A stored format: strict types, no coercion, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)


_Count = Annotated[int, Field(ge=0)]


class _StoredRunState(StoredModel):
    messages: list[Message]
    run_id: str
    usage: tuple[_Count, _Count, _Count, _Count]
    turns: _Count
    invalid_turns: _Count
    call_counts: dict[str, _Count]
    plugins: dict[str, dict[str, Any]] = {}


class _StoredApproval(StoredModel):
    call_id: Annotated[str, Field(min_length=1)]
    tool_name: str
    arguments: dict[str, Any]
    reason: str | None = None


class StoredAgentSession(StoredModel):
    """`gecko:agent:<session>`: an agent's conversation, and the tool calls a paused run waits on."""

    state: _StoredRunState
    pending: list[_StoredApproval]
    before: _Count | None = None
    """With `pending`: how many messages the session held before the paused run (`Agent.discard`)."""
    plugins_before: dict[str, dict[str, Any]] = {}
    """With `pending`: the plugins' data the session held before the paused run (`Agent.discard`), when any."""


def resolve_checkpoint_key(key: bytes | str | None) -> bytes | None:
    """The key that seals stored records: `key`, else the `GECKO_CHECKPOINT_KEY` environment variable.

    Raises:
        ConfigurationError: the key is shorter than 16 bytes.
    """
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        if key is None:
            return None
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) < _MIN_KEY_BYTES:
        raise ConfigurationError(
            f"the checkpoint key has {len(raw)} bytes; use at least {_MIN_KEY_BYTES} random bytes "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return raw


def _canonical(record: dict[str, Any]) -> bytes:
    """The key-sorted JSON that seals written before the stored text was sealed cover."""
    return encode_value(record, sort_keys=True).encode()


class Sealer:
    """Seals records before they are stored and checks them when they are read back.

    Args:
        key: The HMAC key (from `resolve_checkpoint_key`); None seals with a plain digest.
    """

    __slots__ = ("_contexts", "_key", "_mac", "sealed_bytes")

    def __init__(self, key: bytes | None) -> None:
        self._key = key
        # The keyed HMAC state, computed once: each seal continues a copy of it.
        self._mac = None if key is None else hmac.new(key, digestmod=hashlib.sha256)
        # The hash (or HMAC) state after the start of the binding context of each storage key sealed
        # lately (a few per session): each seal continues a copy of it, and never builds its message.
        self._contexts: dict[str, Any] = {}
        self.sealed_bytes = 0
        """The size of the JSON of the last record sealed (`seal`, `seal_text`) or verified."""

    def _tag(self, body: bytes, where: str, version: int | None) -> str:
        # The context is exactly `json.dumps([where, version])` between `_DOMAIN` and a NUL.
        context = self._contexts.get(where)
        if context is None:
            if len(self._contexts) >= _CONTEXTS_KEPT:
                self._contexts.clear()
            start = _DOMAIN + f"[{encode_basestring_ascii(where)}, ".encode()
            if self._mac is None:
                context = hashlib.sha256(start)
            else:
                context = self._mac.copy()
                context.update(start)
            self._contexts[where] = context
        state = context.copy()
        state.update(b"null]\x00" if version is None else b"%d]\x00" % version)
        state.update(body)
        return (_DIGEST if self._mac is None else _MAC) + state.hexdigest()

    def seal(self, record: dict[str, Any], *, where: str, version: int | None) -> dict[str, Any]:
        """`record` with its seal, for storing at key `where` as `version` (None: not bound).

        A record that is not JSON data is returned unsealed; the storage refuses it with `InvalidValueError`.
        """
        try:
            body = encode_value(record).encode()
        except InvalidValueError:
            return record
        self.sealed_bytes = len(body)
        return {**record, SEAL_FIELD: self._tag(body, where, version)}

    def seal_text(self, record: dict[str, Any], *, where: str, version: int | None) -> JSONText:
        """`record` with its seal, as the text to store at key `where` as `version` (None: not bound).

        The record is encoded once: the seal covers that text (the record's own key order, which a
        resume gives back), and the stored text is it with the seal added as the last field, so no
        sealed copy of the record is built and the storage does not encode it again.

        Raises:
            InvalidValueError: the record is not JSON data.
        """
        return self.seal_encoded(encode_value(record), where=where, version=version)

    def seal_encoded(self, text: str, *, where: str, version: int | None) -> JSONText:
        """`seal_text` of the record whose `encode_value` text is `text` (a JSON object), for writers that build it."""
        body = text.encode()
        self.sealed_bytes = len(body)
        tag = self._tag(body, where, version)
        return JSONText(f'{text[:-1]}{"," if len(text) > 2 else ""}"{SEAL_FIELD}":"{tag}"}}')

    def verify(
        self, tag: object, record: dict[str, Any], body: bytes, *, where: str, version: int | None, what: str
    ) -> None:
        """Check the seal `tag` of `record`, whose stored JSON is `body`, against its key and version.

        A seal over the key-sorted JSON of `record` (written by earlier versions) is accepted too.

        Raises:
            CorruptCheckpointError: no seal, or one that does not match (edited, moved, replayed, another key).
        """
        if not isinstance(tag, str):
            raise CorruptCheckpointError(f"{what} carries no integrity seal (field {SEAL_FIELD!r})")
        if self._key is not None and not tag.startswith(_MAC):
            raise CorruptCheckpointError(
                f"{what} is not sealed with the checkpoint key (it was written without a key, or edited); "
                "records are only accepted with a valid MAC while a key is configured"
            )
        if self._key is None and tag.startswith(_MAC):
            raise CorruptCheckpointError(
                f"{what} is sealed with a checkpoint key; pass the same key (checkpoint_key= or {KEY_ENV}) to read it"
            )
        # Compared as bytes: `compare_digest` refuses non-ASCII text, which a damaged seal may hold.
        self.sealed_bytes = len(body)
        expected = tag.encode()
        if not hmac.compare_digest(expected, self._tag(body, where, version).encode()) and not hmac.compare_digest(
            expected, self._tag(_canonical(record), where, version).encode()
        ):
            cause = "was written with another key, " if self._key is not None else ""
            raise CorruptCheckpointError(
                f"{what} fails its integrity check: it {cause}was changed after it was written, or was copied from "
                "another key or an older version; it cannot be resumed safely"
            )


def describe_invalid(exc: ValidationError, limit: int = 3) -> str:
    """The fields a stored record got wrong, as `path: problem` clauses."""
    parts = []
    for error in exc.errors()[:limit]:
        path = ".".join(str(part) for part in error["loc"]) or "(the record)"
        parts.append(f"field {path!r}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def open_stored(
    sealer: Sealer,
    model: type[StoredModel],
    stored: object,
    *,
    where: str,
    version: int | None,
    what: str,
) -> dict[str, Any]:
    """Validate a stored record against its format, then its seal; the record without the seal.

    Raises:
        CorruptCheckpointError: names `what` and the wrong field, or the failed integrity check.
    """
    if not isinstance(stored, dict):
        raise CorruptCheckpointError(f"{what} is malformed: a {type(stored).__name__}, not an object")
    record = {name: value for name, value in stored.items() if name != SEAL_FIELD}
    try:
        body = encode_value(record).encode()
    except InvalidValueError as exc:
        raise CorruptCheckpointError(f"{what} is malformed: not JSON data ({exc})") from None
    try:
        model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise CorruptCheckpointError(f"{what} is malformed: {describe_invalid(exc)}") from None
    sealer.verify(stored.get(SEAL_FIELD), record, body, where=where, version=version, what=what)
    return record
