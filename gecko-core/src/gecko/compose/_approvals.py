"""Tool approvals that pause a workflow node: an agent's, or those of a team's agent members.

A node's run that waits for approvals becomes the workflow's interrupt `{"approval": pause}`:

- an agent node: `{"session_id": ..., "pending": [approval, ...]}`;
- a team node: `{"pending": [approval + "member_index", ...], "results": [MemberResult, ...]}`,
  every member's result as the run left it (paused members hold their `PausedOutput`).

`Workflow.resume(session_id, value={call_id: True | False})` continues the paused runs, never a new
one: the agent resumes its session; a team resumes its paused members and keeps the other results.
When two paused members wait on the same call id, `value` maps member indexes to their decisions
(`{"0": {call_id: bool}, "1": {...}}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gecko.compose.team import MemberResult, MemberStatus, Team
from gecko.errors import ApprovalError

__all__ = ("approval_pause", "is_pause", "resume_pause")


def approval_pause(output: Any) -> dict[str, Any] | None:
    """The pause of a node whose run waits for tool approvals (see the module doc), or None."""
    from gecko.core.state import PausedOutput

    if isinstance(output, PausedOutput):
        pending = [approval.model_dump(mode="json") for approval in output.pending_approvals]
        return {"session_id": output.session_id, "pending": pending}
    if type(output) is not list or not any(_paused(result) for result in output):
        return None
    pending = []
    for result in output:
        if _paused(result):
            for approval in result.result.pending_approvals:
                pending.append({**approval.model_dump(mode="json"), "member_index": result.member_index})
    return {"pending": pending, "results": list(output)}


def is_pause(approval: Any) -> bool:
    """Whether `approval`, read from a checkpoint, has the shape `approval_pause` gives."""
    if type(approval) is not dict:
        return False
    if isinstance(approval.get("session_id"), str):
        return True
    results = approval.get("results")
    return type(results) is list and all(type(result) is MemberResult for result in results)


async def resume_pause(target: Any, decisions: Any, approval: dict[str, Any]) -> Any:
    """Continue the paused run of node `target` with the caller's `decisions`.

    Raises:
        ApprovalError: `decisions` is not a mapping of call ids to booleans covering every
            pending call (per member, when the members' call ids collide).
    """
    if "session_id" in approval:
        return await target.resume(decisions, session_id=approval["session_id"])
    if not isinstance(target, Team):
        raise ApprovalError(f"the node paused as a team, but it is now a {type(target).__name__}")
    results: list[MemberResult] = approval["results"]
    chosen = _per_member(decisions, results)
    for index in chosen:
        if not 0 <= index < len(target.members) or not callable(getattr(target.members[index], "resume", None)):
            raise ApprovalError(f"team member {index} paused for approvals but cannot `resume` them now")
    return await target._resume_members(results, chosen)


def _paused(result: Any) -> bool:
    from gecko.core.state import PausedOutput

    return type(result) is MemberResult and result.status is MemberStatus.OK and isinstance(result.result, PausedOutput)


def _per_member(decisions: Any, results: list[MemberResult]) -> dict[int, dict[str, bool]]:
    """Each paused member's decisions, checked to cover exactly its pending calls."""
    pending = {
        result.member_index: [a.call_id for a in result.result.pending_approvals]
        for result in results
        if _paused(result)
    }
    if not isinstance(decisions, Mapping):
        raise ApprovalError(
            f"resume a team's approvals with a mapping of call ids to True or False, got {type(decisions).__name__}"
        )
    if decisions and all(isinstance(value, Mapping) for value in decisions.values()):
        chosen = {}
        for key, value in decisions.items():
            index = _member_index(key, pending)
            chosen[index] = dict(value)
    else:
        owners: dict[str, list[int]] = {}
        for index, calls in pending.items():
            for call in calls:
                owners.setdefault(call, []).append(index)
        shared = sorted(call for call, indexes in owners.items() if len(indexes) > 1)
        if shared:
            raise ApprovalError(
                f"several team members wait on calls {', '.join(shared)}; pass the decisions per member: "
                '{"<member index>": {"<call id>": True | False}, ...}'
            )
        chosen = {
            index: {call: decisions[call] for call in calls if call in decisions} for index, calls in pending.items()
        }
        unknown = sorted(str(call) for call in decisions if call not in owners)
        if unknown:
            raise ApprovalError(f"no team member waits on calls {', '.join(unknown)}; pending: {sorted(owners)}")
    for index, calls in pending.items():
        given = chosen.get(index, {})
        if set(given) != set(calls) or not all(type(value) is bool for value in given.values()):
            raise ApprovalError(
                f"team member {index} waits on calls {', '.join(calls)}: pass True or False for each, and nothing else"
            )
    return chosen


def _member_index(key: Any, pending: Mapping[int, list[str]]) -> int:
    index = key if type(key) is int else int(key) if isinstance(key, str) and key.isdigit() else None
    if index is None or index not in pending:
        raise ApprovalError(f"team member {key!r} waits on no approval; paused members: {sorted(pending)}")
    return index
