"""Gecko's side of each workload (the interface is documented in ``frameworks/__init__.py``).

Only W6 is live. Each other function states its workload exactly; implement it with Gecko's
public API when the engine lands, keeping the setup/run split (setup untimed, the runner timed)
and the correctness checks the peers make.
"""

from __future__ import annotations

from pathlib import Path

from frameworks import Runner

IMPORT_MODULE = "gecko"


def _pending(engine: str) -> NotImplementedError:
    return NotImplementedError(f"gecko side lands with the {engine} issue")


async def w1_chain(n: int) -> Runner:
    """W1: a ``gecko.Workflow`` of ``n`` async nodes in one chain, each returning state ``count + 1``.

    Setup builds the workflow; the runner executes it once from ``count = 0`` and asserts the final
    ``count == n``. Reported as wall µs per node.
    """
    raise _pending("Workflow engine")


async def w2a_fanout(width: int) -> Runner:
    """W2a: a ``gecko.Workflow`` entry -> ``width`` parallel no-op nodes (one layer) -> join node.

    The runner executes it once. Reported as wall µs per parallel node.
    """
    raise _pending("Workflow engine")


async def w2b_fanout_sleep(width: int, sleep_s: float) -> Runner:
    """W2b: as W2a, but each parallel node awaits ``anyio.sleep(sleep_s)``.

    The runner executes it once. Reported as wall ms (ideal: ``sleep_s``).
    """
    raise _pending("Workflow engine")


async def w3_checkpoint(n: int, db: Path) -> Runner:
    """W3: the W1 chain of ``n`` nodes, checkpointed after every node to ``sqlite:///{db}``.

    Setup opens the storage (``create_storage``, the gecko-storage-sqlite plugin) and builds the
    workflow with the after-every-node checkpoint strategy; the runner executes the chain once,
    asserts ``count == n``, closes the storage and returns ``db``. Reported as CPU µs per step and
    the bytes of ``db`` plus ``db``-wal.
    """
    raise _pending("Workflow checkpoint / sqlite storage")


async def w4_agent(runs: int) -> Runner:
    """W4: a ``gecko.Agent`` on a scripted model from ``gecko.testing`` with the tool ``frameworks.add``.

    The model first asks for the tool call ``add(a=2, b=3)``, then answers ``"The sum is 5."``
    (from the tool's result). The runner performs ``runs`` sequential agent runs, asserting each
    answer. Reported as wall µs per run.
    """
    raise _pending("Agent engine")


async def w5_agents(agents: int, latency_s: float) -> Runner:
    """W5: ``agents`` W4 agents run at once (one task group).

    The scripted model awaits ``anyio.sleep(latency_s)`` on every call before replying. Reported
    as wall ms (ideal ``2 * latency_s``) and the worker's peak RSS.
    """
    raise _pending("Agent engine")


async def w7_structured(replies: int) -> Runner:
    """W7: ``replies`` sequential structured-output calls through ``StructureEngine``.

    Each call feeds the next document of ``frameworks.scripted_replies(replies)`` as the scripted
    model's reply and parses it into ``frameworks.Reply``. Reported as wall µs per reply.
    """
    raise _pending("StructureEngine")


async def w8_uneven(long_s: float, short_s: float, chain: int) -> Runner:
    """W8: a ``gecko.Workflow`` entry -> {one node; a chain of ``chain`` nodes} -> join node.

    The one node awaits ``anyio.sleep(long_s)``, each chained node ``anyio.sleep(short_s)``; the
    join runs as soon as both ends finish. The runner executes it once. Reported as wall ms against
    the longest path, ``max(long_s, chain * short_s)``.
    """
    raise _pending("Workflow engine")
