"""The stored formats of a workflow session, validated whenever they are read back.

Every record is checked against its model (strict types, no coercion, unknown fields refused) and
then against its seal (`gecko.core._stored`), so a checkpoint that is valid JSON but not a valid
checkpoint is a `CorruptCheckpointError` naming the session and the field, never an error from
deep inside the engine. Checks that need the graph (node names, merge rules) run when the run is
restored (`gecko.compose._engine.Run.restore`). User values (state, outputs, input) are any JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from gecko.compose.nodes import NodeStatus
from gecko.core._stored import StoredModel

__all__ = ("StoredAttempts", "StoredEntry", "StoredSnapshot")

_Count = Annotated[int, Field(ge=0)]
_Name = Annotated[str, Field(min_length=1)]


class _History(StoredModel):
    entries: list[tuple[_Name, Any]]
    latest: dict[_Name, Any]
    last: Any


class _MergeLog(StoredModel):
    # The value the contributions started from (empty: the key was unset), then
    # `[topological rank, record number, contribution]` per contribution.
    base: Annotated[list[Any], Field(max_length=1)]
    log: list[tuple[_Count, _Count, Any]]


class _Interrupt(StoredModel):
    node: _Name
    payload: Any


class StoredSnapshot(StoredModel):
    """`snapshot`: the whole run as of record number `rec` (written by `Run.capture`)."""

    format: int
    run: _Name
    rec: _Count
    status: _Name
    saved_at: float
    input: Any
    state: dict[str, Any]
    history: _History
    pending: dict[_Name, Any]
    inbox: dict[_Name, Any]
    remaining: dict[_Name, _Count]
    activated: list[_Name]
    nodes: dict[_Name, NodeStatus]
    steps: _Count
    merges: dict[str, _MergeLog]
    interrupt: _Interrupt | None
    # The run's trace context (W3C carrier from a telemetry plugin), so a resume continues its trace.
    trace: dict[str, str] | None = None
    # The shape of the graph that wrote it (`Plan.shape`); absent in snapshots of earlier versions.
    graph: str | None = None


class _Record(StoredModel):
    # One node completion: node, output, state writes, deleted keys, jump `[node, input]`.
    n: _Name
    o: Any
    d: dict[str, Any] | None = None
    x: list[str] | None = None
    j: tuple[_Name, Any] | None = None


class StoredEntry(StoredModel):
    """`journal/<slot>`: entry number `e` of run `run`, holding `[record number, record]` pairs."""

    e: Annotated[int, Field(ge=1)]
    run: _Name
    recs: list[tuple[Annotated[int, Field(ge=1)], _Record]]


class StoredAttempts(StoredModel):
    """`gecko/attempts/...`: starts of a session without a recorded end, and whether it is parked.

    Further fields (who holds the session) are accepted: they describe, and are not read.
    """

    model_config = ConfigDict(extra="allow", defer_build=True)

    count: _Count
    parked: bool
    owner: str
    at: float
