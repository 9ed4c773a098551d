"""Conformance suites: subclass one, provide its fixture, and pytest checks the whole contract."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gecko.testing.conformance.checkpoints import CheckpointIntegrityConformance
    from gecko.testing.conformance.embedders import EmbedderConformance
    from gecko.testing.conformance.models import ModelConformance
    from gecko.testing.conformance.ownership import WorkflowOwnershipConformance
    from gecko.testing.conformance.storage import StorageConformance
    from gecko.testing.conformance.vector import VectorStoreConformance

__all__ = (
    "StorageConformance",
    "VectorStoreConformance",
    "ModelConformance",
    "EmbedderConformance",
    "WorkflowOwnershipConformance",
    "CheckpointIntegrityConformance",
)

_LOCATIONS = {
    "StorageConformance": "gecko.testing.conformance.storage",
    "VectorStoreConformance": "gecko.testing.conformance.vector",
    "ModelConformance": "gecko.testing.conformance.models",
    "EmbedderConformance": "gecko.testing.conformance.embedders",
    "WorkflowOwnershipConformance": "gecko.testing.conformance.ownership",
    "CheckpointIntegrityConformance": "gecko.testing.conformance.checkpoints",
}


def __getattr__(name: str) -> Any:
    # Suites import pytest; load each only when asked for.
    location = _LOCATIONS.get(name)
    if location is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(location), name)
