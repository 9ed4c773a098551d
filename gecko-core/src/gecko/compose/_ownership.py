"""Session ownership: one worker at a time runs a session, under a renewed, fencing lease.

A run on storage that declares `capabilities.leases` first acquires the lease
`gecko/workflow/<workflow>/<session>` under an owner id naming its holder (`LeaseHolder`: host,
boot, process id, process start time, and a nonce fresh per run, so two runs in one process
exclude each other too). A background task renews it every `ttl / 3`; every checkpoint write
carries it as a fence, so a worker that lost it (paused past the TTL while another worker took
over) can never commit again. If renewal finds the lease gone, the run's scope is cancelled at once.

A worker that finds the lease held reads the holder. When the holder ran on this host (same
hostname and boot) and its process is gone (no such process, a zombie, or the process id reused
by a later process), or it is a run of this very process that has ended, the worker takes the
lease over at once: the storage grants it only while that dead holder is still the owner, under a
new token, so anything the dead holder might still send is fenced out. A holder on another host
is never judged: its lease is waited out (`SessionOwnedElsewhere` until it lapses).

Every start of a session also bumps a start count at `gecko/attempts/<workflow>/<session>` (beside,
not inside, the checkpoint keys); an end the worker
records (finished, paused, failed, timed out, cancelled) clears it. A count that reaches
`max_attempts` means the session stopped its worker that many times in a row (a crash, a kill, an
out-of-memory), so it is parked instead of being resumed forever. The count is sealed and validated
like the checkpoint (`gecko.compose._stored`); a corrupt one is a `CorruptCheckpointError`.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from gecko.compose._stored import StoredAttempts
from gecko.core._stored import Sealer, open_stored
from gecko.errors import CorruptCheckpointError, FencingError, SessionOwnedElsewhere, StorageError, WorkflowParked
from gecko.plugins.storage import Lease, Storage
from gecko.redaction import redacting_logger

__all__ = ("LeaseHolder", "SessionOwnership", "attempts_key", "lease_name")

logger = redacting_logger("gecko.workflow")

_RELEASE_BOUND_S = 10.0


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux); None when it is gone or unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses): state is the first,
    # the start time the 20th.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


_HOST = socket.gethostname()
_BOOT = _boot_id()
# This process's id and start time, read once per process (a forked child reads its own).
_THIS_PROCESS: tuple[int, int] | None = None
# The nonces of the runs of this process that hold (or are acquiring) a lease right now.
_LIVE_RUNS: set[str] = set()


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a session lease; stored as the lease's owner id `host:pid:started:boot:nonce`.

    Attributes:
        host: The holder's hostname.
        pid: Its process id.
        started: Its process start time in clock ticks since boot (0 where unknown).
        boot: The host's boot id (empty where unknown): a reboot ends every holder.
        nonce: Random, fresh per run.
    """

    host: str
    pid: int
    started: int
    boot: str
    nonce: str

    @classmethod
    def of_process(cls, pid: int) -> LeaseHolder:
        """A new holder id for a run in process `pid` on this host (with a fresh nonce)."""
        return cls(_HOST, pid, _process_start(pid) or 0, _BOOT, secrets.token_hex(4))

    @classmethod
    def of_this_run(cls) -> LeaseHolder:
        """A new holder id for a run in this process."""
        global _THIS_PROCESS
        pid = os.getpid()
        if _THIS_PROCESS is None or _THIS_PROCESS[0] != pid:
            _THIS_PROCESS = (pid, _process_start(pid) or 0)
        return cls(_HOST, pid, _THIS_PROCESS[1], _BOOT, secrets.token_hex(4))

    @classmethod
    def parse(cls, owner: str) -> LeaseHolder | None:
        """The holder named by an owner id; None when it is not one (another writer's format)."""
        parts = owner.rsplit(":", 4)
        if len(parts) != 5 or not parts[1].isdigit() or not parts[2].isdigit():
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]), parts[3], parts[4])

    def owner(self) -> str:
        """The owner id stored with the lease."""
        return f"{self.host}:{self.pid}:{self.started}:{self.boot}:{self.nonce}"

    def is_dead(self) -> bool:
        """Whether this holder surely no longer runs; False whenever that cannot be known here."""
        if self.host != _HOST or os.name != "posix":
            return False
        if self.boot and _BOOT and self.boot != _BOOT:
            return True
        if self.pid == os.getpid():
            return self.started == (_process_start(self.pid) or 0) and self.nonce not in _LIVE_RUNS
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        started = _process_start(self.pid)
        if started is None:
            # Gone or a zombie where /proc exists; elsewhere nothing more can be told.
            return Path("/proc/self/stat").exists()
        return bool(self.started) and started != self.started


def lease_name(workflow: str, session_id: str) -> str:
    """The lease a worker holds while it runs `session_id` of `workflow`."""
    return f"gecko/workflow/{workflow}/{session_id}"


def attempts_key(workflow: str, session_id: str) -> str:
    """The key counting the starts of a session that have not reached a recorded end."""
    return f"gecko/attempts/{workflow}/{session_id}"


class SessionOwnership:
    """The lease and the start count of one run of one session."""

    def __init__(
        self,
        storage: Storage,
        workflow: str,
        session_id: str,
        *,
        ttl: float,
        max_attempts: int | None,
        key: bytes | None = None,
    ) -> None:
        self.storage = storage
        self.workflow = workflow
        self.session_id = session_id
        self.ttl = ttl
        self.max_attempts = max_attempts
        self.holder = LeaseHolder.of_this_run()
        self.owner = self.holder.owner()
        self.name = lease_name(workflow, session_id)
        self.lease: Lease | None = None
        # Wraps the node execution of the run; cancelled as soon as the lease is found lost.
        self.scope = anyio.CancelScope()
        self.lost: StorageError | None = None
        self._sealer = Sealer(key)

    def _describe(self) -> str:
        return f"session {self.session_id!r} of workflow {self.workflow!r}"

    async def acquire(self) -> Lease:
        """Take the session's lease.

        Raises:
            SessionOwnedElsewhere: another worker holds it.
        """
        _LIVE_RUNS.add(self.holder.nonce)
        try:
            lease = await self.storage.acquire_lease(self.name, owner=self.owner, ttl=self.ttl)
            if lease is None:
                lease = await self._take_over_from_dead_holder()
        except BaseException:
            _LIVE_RUNS.discard(self.holder.nonce)
            raise
        if lease is None:
            _LIVE_RUNS.discard(self.holder.nonce)
            raise SessionOwnedElsewhere(
                f"{self._describe()} is being run by another worker (lease {self.name!r}); leave it to that "
                f"worker, or retry once it finishes or stops renewing (its lease lapses {self.ttl}s after that)"
            )
        self.lease = lease
        return lease

    async def _take_over_from_dead_holder(self) -> Lease | None:
        current = await self.storage.lease_owner(self.name)
        holder = None if current is None else LeaseHolder.parse(current)
        if current is None:
            # Released or lapsed since the first try.
            return await self.storage.acquire_lease(self.name, owner=self.owner, ttl=self.ttl)
        if holder is None or not holder.is_dead():
            return None
        lease = await self.storage.acquire_lease(self.name, owner=self.owner, ttl=self.ttl, replacing=current)
        if lease is not None:
            logger.warning(
                "%s was held by process %s on this host, which is gone; taken over at once (lease token %s)",
                self._describe(),
                holder.pid,
                lease.token,
            )
        return lease

    async def keep_renewed(self) -> None:
        """Renew the lease every `ttl / 3` until cancelled; cancel the run's scope once it is lost."""
        interval = self.ttl / 3
        while True:
            await anyio.sleep(interval)
            lease = self.lease
            assert lease is not None
            try:
                self.lease = await self.storage.renew_lease(lease, ttl=self.ttl)
            except FencingError as exc:
                self._lose(exc)
                return
            except StorageError as exc:
                # The storage may come back in time (a restarting server); past the expiry it cannot.
                if time.time() >= lease.expires_at:
                    self._lose(exc)
                    return
                logger.warning("could not renew the lease of %s yet: %s", self._describe(), exc)

    def _lose(self, exc: StorageError) -> None:
        logger.warning("%s lost its lease: %s; stopping the run", self._describe(), exc)
        self.lost = exc
        self.scope.cancel()

    async def begin_attempt(self, pending: list[str]) -> None:
        """Count this start, or park the session when `max_attempts` starts in a row never ended.

        Raises:
            WorkflowParked: the session is (now) parked; no node runs.
        """
        if self.max_attempts is None:
            return
        key = attempts_key(self.workflow, self.session_id)
        record = await self._read(key)
        count = 0 if record is None else record["count"]
        parked = record is not None and record["parked"]
        if parked or count >= self.max_attempts:
            if not parked:
                await self._write(key, {"count": count, "parked": True, "owner": self.owner, "at": time.time()})
            raise WorkflowParked(
                f"{self._describe()} was started {count} times in a row without reaching an end (its worker "
                f"crashed or was killed each time; nodes left to run: {pending}); it is parked instead of being "
                f"resumed forever. Find what stops the worker, then call `await workflow.unpark({self.session_id!r})`"
                " and resume it"
            )
        await self._write(key, {"count": count + 1, "parked": False, "owner": self.owner, "at": time.time()})

    async def end_attempt(self) -> None:
        """Record that this start reached an end (shielded, bounded; a failure is only logged)."""
        if self.max_attempts is None or self.lost is not None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_BOUND_S):
            try:
                await self.clear()
            except StorageError as exc:
                logger.warning("could not clear the start count of %s: %s", self._describe(), exc)

    async def clear(self) -> None:
        """Forget the start count and a parked mark."""
        await self.storage.delete(attempts_key(self.workflow, self.session_id), fence=self.lease)

    async def release(self) -> None:
        """Give the lease up (shielded, bounded); a storage failure only leaves it to expire."""
        _LIVE_RUNS.discard(self.holder.nonce)
        lease = self.lease
        if lease is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_BOUND_S):
            try:
                await self.storage.release_lease(lease)
            except StorageError as exc:
                logger.warning(
                    "could not release the lease of %s (it expires in %ss): %s", self._describe(), self.ttl, exc
                )

    async def _read(self, key: str) -> dict[str, Any] | None:
        what = f"the start count of {self._describe()} ({key!r})"
        reset = f"call `await workflow.unpark({self.session_id!r})` to reset it"
        try:
            stored = await self.storage.get(key)
        except StorageError as exc:
            # A plain StorageError on read is the contract's "stored value is not valid JSON".
            if type(exc) is StorageError:
                raise CorruptCheckpointError(f"{what} is unreadable: {exc}; {reset}") from exc
            raise
        if stored is None:
            return None
        try:
            # Written with `set`, whose version is not known in advance: only the key is bound.
            return open_stored(self._sealer, StoredAttempts, stored, where=key, version=None, what=what)
        except CorruptCheckpointError as exc:
            raise CorruptCheckpointError(f"{exc}; {reset}") from None

    async def _write(self, key: str, value: dict[str, Any]) -> None:
        await self.storage.set(key, self._sealer.seal_text(value, where=key, version=None), fence=self.lease)
