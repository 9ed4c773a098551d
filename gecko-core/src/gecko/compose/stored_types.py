"""User pydantic models that workflow checkpoints may store: registered by name, never imported.

Checkpoints hold JSON, never pickle. A registered model is stored as its JSON with its name
(`module:qualname`); on resume the name is looked up among the classes registered in the resuming
process, and the JSON is validated into that class. Nothing named in stored data is imported, so
a name nobody registered is an `UnregisteredStoredTypeError` saying what to register.

An agent node, or an agent member of a team node, registers its `output_type` when it is added
to a workflow; register any other model yourself (`register_stored_type(Model)`, also a class
decorator) before the run that stores it and before the resume that reads it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from gecko.errors import ConfigurationError

__all__ = ("register_stored_type", "registered_type", "stored_type_name")

_T = TypeVar("_T", bound=type)
_REGISTERED: dict[str, type] = {}


def register_stored_type(cls: _T) -> _T:
    """Let checkpoints store instances of the pydantic model `cls` (as JSON); returns `cls`.

    Raises:
        ConfigurationError: `cls` is not a pydantic model class.
    """
    if not (isinstance(cls, type) and callable(getattr(cls, "model_validate_json", None))):
        raise ConfigurationError(f"only pydantic model classes can be registered for checkpoints, got {cls!r}")
    _REGISTERED[stored_type_name(cls)] = cls
    return cls


def stored_type_name(cls: type) -> str:
    """The name a checkpoint stores for instances of `cls`: `module:qualname`."""
    return f"{cls.__module__}:{cls.__qualname__}"


def registered_type(name: str) -> type | None:
    """The class registered under `name` in this process, or None."""
    return _REGISTERED.get(name)


def register_node_types(target: Any) -> None:
    """Register the `output_type` of an agent node, or of a team node's agent members."""
    for runner in (target, *getattr(target, "members", ())):
        output_type = getattr(runner, "output_type", None)
        if isinstance(output_type, type) and callable(getattr(output_type, "model_validate_json", None)):
            register_stored_type(output_type)
