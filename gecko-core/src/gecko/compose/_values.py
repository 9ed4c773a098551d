"""Values a workflow checkpoint stores (input, state, outputs): JSON-exact, plus Gecko's own types.

A checkpointed value must read back as exactly the value that was saved, so `storable` accepts
JSON data with exactly its Python types (dict with str keys, list, str, int, finite float, bool,
None) and, so that agents and teams work as workflow nodes, instances of a closed set of Gecko's
own result types: `AgentOutput`, `PausedOutput`, `Message`, `TokenUsage`, `MemberResult`, and
the exceptions a `MemberResult` carries when they are a `gecko.errors` class or a builtin one
(restored by type and arguments; traceback and cause are not kept). Each is stored as
`{"$gecko": <name>, "v": <fields>}`; user dicts may not use the key `"$gecko"`, so data is never
read as a tag. `restored` turns tags back into those classes, looked up in the closed registry
below by name: nothing named in stored data is ever imported or evaluated.

A user pydantic model (an agent's structured output in `AgentOutput.data` included) is stored
when its class is registered (`gecko.compose.stored_types`; agent nodes register their
`output_type`): as `{"$gecko": "model", "v": {"type": "module:qualname", "json": <its JSON>}}`,
checked to validate back into an equal model, and rebuilt only through a class registered in the
reading process. An unregistered model is refused with the way to register it.

A stored value is at most 100 dicts and lists deep (`_STORED_LEVELS`, the tags of Gecko's types
counted), so every record that holds it stays within what a checkpoint's reader takes.
"""

from __future__ import annotations

import builtins
import json
import math
from typing import Any, Final

from pydantic import BaseModel

from gecko import errors
from gecko.compose.stored_types import registered_type, stored_type_name
from gecko.compose.team import MemberResult, MemberStatus
from gecko.core.state import _STORED_LEVELS, PausedOutput, _levels
from gecko.errors import CorruptCheckpointError, UnregisteredStoredTypeError, UnstorableValueError
from gecko.types import AgentOutput, Message, TokenUsage

__all__ = ("TAG", "restored", "storable", "storable_error")

TAG: Final = "$gecko"
_ERROR = "error"
_USER_MODEL = "model"
# Gecko's models and their fields that hold user data (stored through `storable`, not dumped).
_MODELS: Final[dict[str, tuple[type[BaseModel], tuple[str, ...]]]] = {
    "AgentOutput": (AgentOutput, ("data",)),
    "PausedOutput": (PausedOutput, ("data",)),
    "Message": (Message, ()),
    "TokenUsage": (TokenUsage, ()),
}
_MODEL_NAMES: Final = {cls: name for name, (cls, _) in _MODELS.items()}
_ERRORS: Final[dict[str, type[Exception]]] = {
    **{
        f"builtins.{name}": cls
        for name, cls in vars(builtins).items()
        if isinstance(cls, type) and issubclass(cls, Exception)
    },
    **{
        f"gecko.errors.{name}": cls
        for name in errors.__all__
        if isinstance(cls := getattr(errors, name), type) and issubclass(cls, Exception)
    },
}
_ERROR_NAMES: Final = {cls: name for name, cls in _ERRORS.items()}


def storable(value: Any, where: str, *, keyed: bool = False) -> Any:
    """A copy of `value` to store, if it reads back (through `restored`) as exactly the same value.

    The containers are copied, so later changes to the caller's objects never reach the stored record.
    With `keyed`, `value` is a dict of values (the state) each held to the nesting limit, not itself.

    Raises:
        UnstorableValueError: names `where` and the path inside the value of the first offender.
    """
    levels = _STORED_LEVELS + keyed
    try:
        return _plain(value, levels)
    except _NotPlain:
        pass  # the walk below accepts Gecko's types, and names the path of what it refuses
    except (_TooDeep, RecursionError):
        raise _too_deep(where, keyed) from None
    try:
        stored = _encode(value, where, "")
    except RecursionError:
        raise _too_deep(where, keyed) from None
    if _levels(stored) > levels:
        raise _too_deep(where, keyed)
    return stored


def _too_deep(where: str, keyed: bool) -> UnstorableValueError:
    return UnstorableValueError(
        f"{where} {'holds a value' if keyed else 'is'} nested too deeply (or contains itself); a checkpoint "
        f"keeps values at most {_STORED_LEVELS} levels deep"
    )


class _NotPlain(Exception):
    """`_plain` met a value that is not plain JSON data."""


class _TooDeep(Exception):
    """`_plain` met a value nested deeper than it may be."""


def _plain(value: Any, room: int) -> Any:
    """What `_encode` returns for plain JSON data at most `room` levels deep, without building the path of
    every item; else `_NotPlain` (or `_TooDeep`)."""
    kind = type(value)
    if kind is dict:
        if not room:
            raise _TooDeep
        room -= 1
        copy = {}
        for name, item in value.items():
            if type(name) is not str or name == TAG:
                raise _NotPlain
            kind = type(item)
            copy[name] = item if kind is str or kind is int or kind is bool or item is None else _plain(item, room)
        return copy
    if kind is list:
        if not room:
            raise _TooDeep
        room -= 1
        items = []
        for item in value:  # a loop: a comprehension would make `room` a cell, costly on every call
            items.append(_plain(item, room))
        return items
    if kind is str or kind is int or kind is bool or value is None or (kind is float and math.isfinite(value)):
        return value
    raise _NotPlain


def storable_error(error: Exception, where: str) -> dict[str, Any]:
    """`error` as `storable` keeps it: a Gecko or builtin error, rebuilt from its arguments by `restored`.

    Raises:
        UnstorableValueError: any other exception type, or one whose arguments do not rebuild it.
    """
    return _encode_error(error, where, "")


def _encode(value: Any, where: str, path: str) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None or (kind is float and math.isfinite(value)):
        return value
    if kind is list:
        return [_encode(item, where, f"{path}[{index}]") for index, item in enumerate(value)]
    if kind is dict:
        copy = {}
        for name, item in value.items():
            if type(name) is not str:
                raise UnstorableValueError(
                    f"{where}{path} has the key {name!r} ({type(name).__name__}), which would come back as a "
                    "string; checkpoints store dicts with str keys only"
                )
            if name == TAG:
                raise UnstorableValueError(
                    f"{where}{path} has the key {TAG!r}, which checkpoints reserve for Gecko's own types; rename it"
                )
            copy[name] = _encode(item, where, f"{path}[{name!r}]")
        return copy
    if kind in _MODEL_NAMES:
        return _encode_model(value, where, path)
    if kind is MemberResult:
        return {
            TAG: "MemberResult",
            "v": {
                "result": _encode(value.result, where, f"{path}.result"),
                "error": None if value.error is None else _encode_error(value.error, where, f"{path}.error"),
                "member_index": value.member_index,
                "status": value.status.value,
                "latency": _encode(value.latency, where, f"{path}.latency"),
                "usage": None if value.usage is None else _encode_model(value.usage, where, f"{path}.usage"),
            },
        }
    if isinstance(value, BaseModel) and registered_type(stored_type_name(kind)) is kind:
        return _encode_user_model(value, where, path)
    raise UnstorableValueError(f"{where}{path} is {_unstorable(value, path)}. {_RULE}")


_RULE = (
    "Checkpointed values must be JSON data (dict with str keys, list, str, int, finite float, bool, None) or "
    "Gecko's own results (AgentOutput, MemberResult, Message, TokenUsage) or registered pydantic models, so a "
    "resumed run sees exactly the value it saved"
)


def _encode_model(value: BaseModel, where: str, path: str) -> dict[str, Any]:
    name = _MODEL_NAMES[type(value)]
    user_fields = _MODELS[name][1]
    fields = value.model_dump(mode="json", exclude=set(user_fields))
    for field in user_fields:
        fields[field] = _encode(getattr(value, field), where, f"{path}.{field}")
    return {TAG: name, "v": fields}


def _encode_user_model(value: BaseModel, where: str, path: str) -> dict[str, Any]:
    kind = type(value)
    try:
        text = value.model_dump_json()
        exact = kind.model_validate_json(text) == value
    except Exception as exc:  # a serializer or validator of the user's model refusing its own value
        raise UnstorableValueError(f"{where}{path} ({kind.__name__}) cannot go through JSON: {exc}") from None
    if not exact:
        raise UnstorableValueError(
            f"{where}{path} ({kind.__name__}) reads back from its JSON as a different value; "
            "store `value.model_dump(mode='json')` and rebuild the model where it is read"
        )
    return {TAG: _USER_MODEL, "v": {"type": stored_type_name(kind), "json": json.loads(text)}}


def _encode_error(error: Exception, where: str, path: str) -> dict[str, Any]:
    name = _ERROR_NAMES.get(type(error))
    args = list(error.args)
    if name is not None:
        try:
            rebuilt = type(error)(*args)
        except Exception:
            rebuilt = None
        if type(rebuilt) is type(error) and rebuilt.args == error.args:
            return {TAG: _ERROR, "v": {"type": name, "args": _encode(args, where, f"{path}.args")}}
    raise UnstorableValueError(
        f"{where}{path} is a {type(error).__module__}.{type(error).__qualname__}, which a checkpoint cannot rebuild: "
        "only Gecko's errors and Python's builtin exceptions, rebuilt from their arguments, are restored. Catch "
        "the error inside the member and return a value, or raise one of those"
    )


def _unstorable(value: object, path: str) -> str:
    kind = type(value)
    if isinstance(value, BaseModel):
        what = "an agent's structured output, a pydantic model" if path.endswith(".data") else "a pydantic model"
        return (
            f"{what} ({kind.__module__}.{kind.__qualname__}) that is not registered for checkpoints; call "
            f"`gecko.compose.workflow.register_stored_type({kind.__name__})` (in every process that runs or "
            "resumes the workflow), or store `value.model_dump(mode='json')` instead"
        )
    if kind is float:
        return f"{value!r}, which JSON cannot hold"
    if isinstance(value, tuple):
        return "a tuple, which would come back as a list; store a list"
    if isinstance(value, (set, frozenset)):
        return f"a {kind.__name__}, which JSON cannot hold; store a sorted list"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{kind.__name__}, which JSON cannot hold; store text (e.g. base64)"
    return f"a {kind.__module__}.{kind.__qualname__}, which JSON cannot hold exactly; store plain JSON data"


def restored(value: Any, what: str) -> Any:
    """The value `storable` stored: Gecko's tagged types rebuilt, everything else as read.

    Raises:
        CorruptCheckpointError: a tag that names no Gecko type, or fields that do not fit it.
    """
    try:
        return _restored(value, what)
    except RecursionError:
        raise CorruptCheckpointError(f"{what} holds a value nested too deeply to read back") from None


def _restored(value: Any, what: str) -> Any:
    if type(value) is list:
        return [_restored(item, what) for item in value]
    if type(value) is not dict:
        return value
    if TAG not in value:
        return {name: _restored(item, what) for name, item in value.items()}
    name, fields = value[TAG], value.get("v")
    if set(value) != {TAG, "v"} or type(name) is not str or type(fields) is not dict:
        raise CorruptCheckpointError(f"{what} holds a malformed Gecko value {_shown(value)}")
    try:
        return _decode(name, fields, what)
    except (RecursionError, CorruptCheckpointError, UnregisteredStoredTypeError):
        raise
    except Exception as exc:  # a constructor or validator refusing stored fields: the record is wrong
        raise CorruptCheckpointError(f"{what} holds a {name} that cannot be rebuilt: {exc}") from None


def _decode(name: str, fields: dict[str, Any], what: str) -> Any:
    if name in _MODELS:
        cls, user_fields = _MODELS[name]
        values = {**fields, **{field: _restored(fields.get(field), what) for field in user_fields}}
        return cls.model_validate(values)
    if name == "MemberResult":
        if set(fields) != {"result", "error", "member_index", "status", "latency", "usage"}:
            raise ValueError(f"fields {sorted(fields)}")
        error, usage = (_restored(fields[field], what) for field in ("error", "usage"))
        index, latency = fields["member_index"], fields["latency"]
        if not (
            (error is None or isinstance(error, Exception))
            and (usage is None or type(usage) is TokenUsage)
            and type(index) is int
            and type(latency) in (int, float)
        ):
            raise ValueError("a field of the wrong type")
        return MemberResult(
            result=_restored(fields["result"], what),
            error=error,
            member_index=index,
            status=MemberStatus(fields["status"]),
            latency=float(latency),
            usage=usage,
        )
    if name == _USER_MODEL:
        stored, text = fields.get("type"), fields.get("json")
        if set(fields) != {"type", "json"} or type(stored) is not str:
            raise ValueError(f"fields {sorted(fields)}")
        model = registered_type(stored)
        if model is None:
            raise UnregisteredStoredTypeError(
                f"{what} holds a {stored} model, a class not registered in this process; call "
                "`gecko.compose.workflow.register_stored_type(<that class>)` (or add the agent node whose "
                "`output_type` it is) before resuming"
            )
        return model.model_validate_json(json.dumps(text))  # type: ignore[attr-defined]
    if name == _ERROR:
        error = _ERRORS.get(str(fields.get("type")))
        args = fields.get("args")
        if error is None or set(fields) != {"type", "args"} or type(args) is not list:
            raise ValueError(f"no Gecko or builtin error {fields.get('type')!r} with arguments")
        return error(*_restored(args, what))
    raise ValueError(f"{name!r} is not one of Gecko's stored types")


def _shown(value: dict[str, Any]) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
