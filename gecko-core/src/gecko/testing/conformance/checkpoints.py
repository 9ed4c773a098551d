"""`CheckpointIntegrityConformance`: tampered checkpoints end in a typed error on a storage backend.

Real runs write real checkpoints (workflow snapshot, journal, start count, an agent's paused
session) to the backend; each check then edits what is stored and asserts the typed error on
resume: `CorruptCheckpointError` naming the session and the field, never a crash and never a
silently different run. Subclass it and provide the fixture `storage_url`::

    class TestMyStoreCheckpoints(CheckpointIntegrityConformance):
        @pytest.fixture
        def storage_url(self, tmp_path):
            return f"mystore:///{tmp_path}/data"

`reseal` writes an edited record back with a valid seal, as someone who knows the (public)
digest scheme, or the key, could: the checks that use it reach the format validation. The suite
needs pytest and hypothesis (the fuzzing checks).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gecko.compose._checkpoint import CheckpointStore
from gecko.compose._ownership import attempts_key
from gecko.compose.nodes import Next, NodeContext
from gecko.compose.workflow import Workflow
from gecko.core._stored import SEAL_FIELD, Sealer
from gecko.core.agent import Agent, PausedOutput, session_key
from gecko.core.state import _STORED_LEVELS
from gecko.core.toolbox import tool
from gecko.errors import CorruptCheckpointError, UnstorableValueError, WorkflowError
from gecko.plugins.storage import Storage
from gecko.plugins.storage.factory import create_storage
from gecko.testing.models import ScriptedModel, tool_calls_reply
from gecko.types import ToolCall

__all__ = ("CheckpointIntegrityConformance", "reseal")

WORKFLOW = "ledger"
KEY = b"k" * 32
Edit = Callable[[dict[str, Any]], object]


async def reseal(
    storage: Storage,
    where: str,
    record: dict[str, Any],
    *,
    checkpoint_key: bytes | None = None,
    version_bound: bool = True,
) -> None:
    """Store `record` at `where` with a seal valid for the version this write creates.

    `version_bound=False` for records sealed without their version (a session's start count).
    """
    found = await storage.get_versioned(where)
    version = None if not version_bound else 1 if found is None else found.version + 1
    body = {name: value for name, value in record.items() if name != SEAL_FIELD}
    await storage.set(where, Sealer(checkpoint_key).seal(body, where=where, version=version))


class _Crash(BaseException):
    """Stands for the worker process dying mid-run: no final snapshot, no recorded end."""


def _is_crash(exc: BaseException) -> bool:
    if isinstance(exc, _Crash):
        return True
    nested = getattr(exc, "exceptions", ())
    return bool(nested) and all(_is_crash(inner) for inner in nested)


class _Ledger:
    """A diamond `a -> (b, c) -> d -> e` whose nodes add 1 to `total` (merge rule "add")."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.fail: set[str] = set()
        self.crash: set[str] = set()

    def workflow(self, storage: Storage, key: bytes | None = None, *, snapshot_every: int = 64) -> Workflow:
        wf = Workflow(
            WORKFLOW,
            storage=storage,
            merge_rules={"total": "add"},
            scheduling="layered",
            checkpoint_key=key,
            snapshot_every=snapshot_every,
        )
        for name in "abcde":
            wf.add_node(name, self._node(name))
        wf.add_edge("a", "b").add_edge("a", "c").add_edge("b", "d").add_edge("c", "d").add_edge("d", "e")
        return wf.set_entry_point("a")

    def _node(self, name: str) -> Callable[[NodeContext], Any]:
        async def run(ctx: NodeContext) -> str:
            self.runs[name] += 1
            if name in self.crash:
                raise _Crash
            if name in self.fail:
                raise RuntimeError(f"{name} failed")
            ctx.state["total"] = 1
            ctx.state[name] = self.runs[name]
            return f"{name}<{ctx.get_last_output()}>"

        return run


def _key(session: str, name: str) -> str:
    return f"gecko/workflow/{WORKFLOW}/{session}/{name}"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)
# (crashed or failed image, which record, which place in it, the JSON put there)
_Case = tuple[bool, int, int, Any]
_cases = st.tuples(st.booleans(), st.integers(0, 99), st.integers(0, 999), _json)
# One storage serves every example of a check, each in its own session.
_sessions = itertools.count()
_fuzz = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value (dict keys and list indices), outermost first."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for name, item in value.items():
            found += _paths(item, (*prefix, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> bool:
    """Put `value` at `path`; False when it is already there (no change)."""
    parent: Any = record
    for step in path[:-1]:
        parent = parent[step]
    if parent[path[-1]] == value and type(parent[path[-1]]) is type(value):
        return False
    parent[path[-1]] = value
    return True


def _nested(levels: int) -> list[Any]:
    """A list `levels` lists deep."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


# Where a node puts a value a checkpoint keeps: how (given the value), and how the refusal names it.
_CARRIERS: dict[str, tuple[Callable[[NodeContext, Any], Any], str]] = {
    "state": (lambda ctx, value: ctx.state.update(deep=value), "state key 'deep' written by node 'write'"),
    "output": (lambda ctx, value: value, "the output of node 'write'"),
    # A jump's input is the node's output.
    "jump input": (lambda ctx, value: Next("ask", input=value), "the output of node 'write'"),
    "jump state": (
        lambda ctx, value: Next("ask", update_state={"deep": value}),
        "state key 'deep' written by node 'write'",
    ),
    "interrupt": (lambda ctx, value: ctx.interrupt(value), "the interrupt payload of node 'write'"),
}


class _Deep:
    """`write -> ask`: `write` puts a value where `carrier` says; `ask` crashes once, then pauses (unless
    `write` pauses with the value)."""

    def __init__(self, carrier: str, value: Any) -> None:
        self.put = _CARRIERS[carrier][0]
        self.value = value
        self.crash = self.asks = carrier != "interrupt"

    def workflow(self, storage: Storage) -> Workflow:
        wf = Workflow("deep", storage=storage).add_node("write", self._write).add_node("ask", self._ask)
        return wf.add_edge("write", "ask").set_entry_point("write")

    def _write(self, ctx: NodeContext) -> Any:
        return self.put(ctx, self.value)

    def _ask(self, ctx: NodeContext) -> Any:
        if self.crash:
            self.crash = False
            raise _Crash
        return ctx.interrupt("go on?") if self.asks else "done"

    async def run(self, storage: Storage) -> Any:
        """The paused run; unless `write` pauses, through a crash after `write`'s record is durable and a
        resume that reads that record back from the journal."""
        try:
            paused = await self.workflow(storage).execute(session_id="deep")
        except BaseException as exc:
            if not _is_crash(exc):
                raise
            paused = await self.workflow(storage).resume("deep")
        assert paused.paused
        return paused


class CheckpointIntegrityConformance:
    """Every tampered shape of a stored checkpoint is refused with `CorruptCheckpointError`, and every
    untampered one (any value its writer takes) resumes."""

    @pytest.fixture
    def storage_url(self) -> str:
        raise NotImplementedError("provide a `storage_url` fixture naming the backend under test")

    @pytest.fixture
    async def storage(self, storage_url: str) -> AsyncIterator[Storage]:
        async with await create_storage(storage_url) as storage:
            yield storage

    # --- images of real runs ---------------------------------------------------------------

    async def _failed(self, storage: Storage, session: str, key: bytes | None = None) -> _Ledger:
        """A run that failed at `d`: its snapshot holds a, b and c completed, d pending."""
        ledger = _Ledger()
        ledger.fail = {"d"}
        with pytest.raises(WorkflowError, match="d failed"):
            await ledger.workflow(storage, key).execute("in", session_id=session)
        ledger.fail.clear()
        return ledger

    async def _crashed(self, storage: Storage, session: str, key: bytes | None = None) -> _Ledger:
        """A worker that died at `d`: the run's first snapshot (`a` done), then one journal entry of b and c."""
        ledger = _Ledger()
        ledger.crash = {"d"}
        try:
            await ledger.workflow(storage, key).execute("in", session_id=session)
        except BaseException as exc:
            if not _is_crash(exc):
                raise
        else:
            raise AssertionError("the crashing node did not stop the run")
        ledger.crash.clear()
        checkpoint = await CheckpointStore(storage, WORKFLOW, session, key=key).load()
        assert checkpoint is not None
        assert (checkpoint.snapshot["rec"], checkpoint.snapshot["nodes"]) == (1, {"a": "success"})
        assert [record["n"] for record in checkpoint.records] == ["b", "c"]
        return ledger

    async def _edit(
        self, storage: Storage, where: str, edit: Edit, *, sealed: bool = True, version_bound: bool = True
    ) -> None:
        record = await storage.get(where)
        assert isinstance(record, dict), f"nothing stored at {where!r}"
        edit(record)
        if sealed:
            await reseal(storage, where, record, version_bound=version_bound)
        else:
            await storage.set(where, record)

    async def _refused(self, storage: Storage, ledger: _Ledger, session: str, match: str | None) -> None:
        runs = Counter(ledger.runs)
        with pytest.raises(CorruptCheckpointError, match=match) as caught:
            await ledger.workflow(storage).resume(session)
        assert repr(session) in str(caught.value)
        assert ledger.runs == runs, "a node ran from a corrupt checkpoint"

    # --- untouched images resume ------------------------------------------------------------

    async def test_untouched_checkpoints_resume(self, storage: Storage) -> None:
        failed = await self._failed(storage, "f")
        result = await failed.workflow(storage).resume("f")
        assert (result.state["total"], failed.runs) == (5, Counter(a=1, b=1, c=1, d=2, e=1))
        crashed = await self._crashed(storage, "c")
        result = await crashed.workflow(storage).resume("c")
        assert (result.state["total"], crashed.runs) == (5, Counter(a=1, b=1, c=1, d=2, e=1))

    async def test_journal_written_with_another_snapshot_every_resumes(self, storage: Storage) -> None:
        ledger = await self._crashed(storage, "ring")
        result = await ledger.workflow(storage, snapshot_every=2).resume("ring")
        assert (result.state["total"], ledger.runs) == (5, Counter(a=1, b=1, c=1, d=2, e=1))

    # --- values as deep as the writer takes read back -----------------------------------------

    @pytest.mark.parametrize("carrier", list(_CARRIERS))
    async def test_a_value_as_deep_as_a_checkpoint_keeps_reads_back(self, storage: Storage, carrier: str) -> None:
        deep = _Deep(carrier, _nested(_STORED_LEVELS))
        paused = await deep.run(storage)
        if carrier == "interrupt":
            assert paused.interrupt == deep.value
        result = await deep.workflow(storage).resume("deep", "yes")
        assert result.status == "completed"
        kept = result.state.get("deep") if carrier in ("state", "jump state") else result.history["write"]
        assert kept == (deep.value if carrier != "interrupt" else "yes")

    @pytest.mark.parametrize("levels", [_STORED_LEVELS + 1, 150, 250, 600])
    @pytest.mark.parametrize("carrier", list(_CARRIERS))
    async def test_a_value_nested_deeper_is_refused_at_its_node_and_the_session_resumes(
        self, storage: Storage, carrier: str, levels: int
    ) -> None:
        # 200 to ~450 levels were checkpointed, and every resume refused the checkpoint as corrupt.
        deep = _Deep(carrier, _nested(levels))
        refusal = f"{_CARRIERS[carrier][1]} is nested too deeply .* at most {_STORED_LEVELS} levels deep"
        with pytest.raises(UnstorableValueError, match=refusal):
            await deep.run(storage)
        deep.value = _nested(3)
        await deep.run(storage)
        assert (await deep.workflow(storage).resume("deep", "yes")).status == "completed"

    # --- wrong shapes: the field is named ------------------------------------------------------

    @pytest.mark.parametrize(
        ("edit", "field"),
        [
            (lambda s: s.update(steps="3"), "'steps'"),
            (lambda s: s.update(rec=3.0), "'rec'"),
            (lambda s: s.update(rec=-1), "'rec'"),
            (lambda s: s.update(run=7), "'run'"),
            (lambda s: s.update(state=["total", 3]), "'state'"),
            (lambda s: s.update(pending="d"), "'pending'"),
            (lambda s: s.pop("pending"), "'pending'"),
            (lambda s: s.update(admin=True), "'admin'"),
            (lambda s: s["history"].update(entries=[["a"]]), r"'history\.entries\.0"),
            (lambda s: s["history"].update(entries="a,b"), r"'history\.entries'"),
            (lambda s: s["nodes"].update(a="done"), r"'nodes\.a'"),
            (lambda s: s["remaining"].update(d="1"), r"'remaining\.d'"),
            (lambda s: s.update(remaining={"d": -1}), r"'remaining\.d'"),
            (lambda s: s.update(activated="d"), "'activated'"),
            (lambda s: s.update(interrupt={"node": 3, "payload": None}), r"'interrupt"),
            (lambda s: s.update(merges={"total": {"base": [], "log": [["x", 1, 2]]}}), r"'merges\.total\.log"),
            (lambda s: s.update(saved_at="yesterday"), "'saved_at'"),
        ],
    )
    async def test_snapshot_of_wrong_shape_names_the_field(self, storage: Storage, edit: Edit, field: str) -> None:
        ledger = await self._failed(storage, "s")
        await self._edit(storage, _key("s", "snapshot"), edit)
        await self._refused(storage, ledger, "s", f"snapshot .*malformed.*{field}")

    async def test_snapshot_that_is_not_an_object_is_refused(self, storage: Storage) -> None:
        ledger = await self._failed(storage, "s")
        await storage.set(_key("s", "snapshot"), ["not", "a", "checkpoint"])
        await self._refused(storage, ledger, "s", "snapshot .*malformed")

    async def test_snapshot_of_another_format_is_refused(self, storage: Storage) -> None:
        ledger = await self._failed(storage, "s")
        await self._edit(storage, _key("s", "snapshot"), lambda s: s.update(format=999))
        await self._refused(storage, ledger, "s", "format 999")

    @pytest.mark.parametrize(
        ("edit", "problem"),
        [
            (lambda s: s["pending"].update(z="in"), r"unknown nodes \['z'\]"),
            (lambda s: s["history"].update(latest={"ghost": 1}), r"unknown nodes \['ghost'\]"),
            (lambda s: s.update(activated=[*s["activated"], "ghost"]), r"unknown nodes \['ghost'\]"),
            (
                lambda s: s.update(merges={"unruled": {"base": [], "log": []}}),
                r"\['unruled'\], which have no merge rule",
            ),
            (lambda s: s["nodes"].update(d="success"), "'d' both pending and success"),
            (lambda s: s.update(pending={}, activated=[*s["activated"], "e"]), "'e' activated with no input"),
        ],
    )
    async def test_snapshot_that_does_not_fit_the_graph_is_refused(
        self, storage: Storage, edit: Edit, problem: str
    ) -> None:
        ledger = await self._failed(storage, "s")
        await self._edit(storage, _key("s", "snapshot"), edit)
        await self._refused(storage, ledger, "s", problem)

    @pytest.mark.parametrize(
        ("edit", "problem"),
        [
            (lambda e: e["recs"][0].__setitem__(0, "1"), r"malformed.*'recs\.0\.0'"),
            (lambda e: e["recs"][0][1].pop("o"), r"malformed.*'recs\.0\.1\.o'"),
            (lambda e: e["recs"][0][1].update(d=["total", 1]), r"malformed.*'recs\.0\.1\.d'"),
            (lambda e: e["recs"][0][1].update(j="e"), r"malformed.*'recs\.0\.1\.j'"),
            (lambda e: e["recs"][0][1].update(extra=1), r"malformed.*'recs\.0\.1\.extra'"),
            (lambda e: e.update(e="1"), r"malformed.*'e'"),
            (lambda e: e.update(recs={"1": {}}), r"malformed.*'recs'"),
            (lambda e: e["recs"][0][1].update(n="ghost"), "names node 'ghost', which this workflow does not have"),
            (lambda e: e["recs"][0][1].update(n="e"), "completes 'e', which was not runnable"),
            (lambda e: e["recs"][0][1].update(j=["ghost", None]), "cannot be replayed: .*unknown node 'ghost'"),
            (lambda e: e["recs"][0].__setitem__(0, 7), "gap after record 1"),
        ],
    )
    async def test_journal_entry_of_wrong_shape_or_content_is_refused(
        self, storage: Storage, edit: Edit, problem: str
    ) -> None:
        ledger = await self._crashed(storage, "j")
        slot = sorted(await storage.list_keys(_key("j", "journal/")))[0]
        await self._edit(storage, slot, edit)
        await self._refused(storage, ledger, "j", problem)

    async def test_journal_record_of_the_wrong_type_for_its_merge_rule_is_refused(self, storage: Storage) -> None:
        ledger = await self._crashed(storage, "m")
        for slot in await storage.list_keys(_key("m", "journal/")):
            entry = await storage.get(slot)
            assert isinstance(entry, dict)
            for _, record in entry["recs"]:
                if record["n"] == "b":
                    # "add" folds b's contribution onto a's 1: a string there was never written by a run.
                    record["d"]["total"] = "one"
                    await reseal(storage, slot, entry)
        await self._refused(storage, ledger, "m", r"\(node 'b', state keys \['b', 'total'\]\) cannot be replayed")

    @pytest.mark.parametrize(
        ("edit", "field"),
        [
            (lambda a: a.update(count="2"), "'count'"),
            (lambda a: a.update(count=1.5), "'count'"),
            (lambda a: a.update(parked="no"), "'parked'"),
            (lambda a: a.pop("owner"), "'owner'"),
        ],
    )
    async def test_start_count_of_wrong_shape_names_the_field(self, storage: Storage, edit: Edit, field: str) -> None:
        ledger = await self._crashed(storage, "a")
        await self._edit(storage, attempts_key(WORKFLOW, "a"), edit, version_bound=False)
        await self._refused(storage, ledger, "a", f"start count .*malformed.*{field}.*unpark")
        await ledger.workflow(storage).unpark("a")
        assert (await ledger.workflow(storage).resume("a")).state["total"] == 5

    async def test_start_count_accepts_further_holder_fields(self, storage: Storage) -> None:
        ledger = await self._crashed(storage, "a")
        await self._edit(
            storage, attempts_key(WORKFLOW, "a"), lambda a: a.update(host="h", pid=7, started=1.5), version_bound=False
        )
        assert (await ledger.workflow(storage).resume("a")).state["total"] == 5

    # --- well-formed edits: the seal refuses them ----------------------------------------------

    @pytest.mark.parametrize(
        "edit",
        [
            lambda s: s.update(status="completed"),
            lambda s: s.update(pending={}),
            lambda s: s["history"].update(
                entries=[
                    [n, o]
                    for (n, _), (_, o) in zip(s["history"]["entries"], s["history"]["entries"][::-1], strict=True)
                ]
            ),
            lambda s: s["state"].update(total=100),
            lambda s: s.update(steps=0),
        ],
    )
    async def test_edited_snapshot_fails_the_integrity_check(self, storage: Storage, edit: Edit) -> None:
        ledger = await self._failed(storage, "i")
        await self._edit(storage, _key("i", "snapshot"), edit, sealed=False)
        await self._refused(storage, ledger, "i", "fails its integrity check")

    @pytest.mark.parametrize(
        ("seal", "problem"),
        [
            (None, "carries no integrity seal"),
            (7, "carries no integrity seal"),
            ("sha256:ünïcode", "fails its integrity check"),
            ("hmac-sha256:00", "sealed with a checkpoint key"),
            ("", "fails its integrity check"),
        ],
    )
    async def test_damaged_seal_is_refused(self, storage: Storage, seal: object, problem: str) -> None:
        ledger = await self._failed(storage, "seal")
        await self._edit(storage, _key("seal", "snapshot"), lambda s: s.update(seal=seal), sealed=False)
        await self._refused(storage, ledger, "seal", problem)

    async def test_edited_journal_record_fails_the_integrity_check(self, storage: Storage) -> None:
        ledger = await self._crashed(storage, "i")
        slot = sorted(await storage.list_keys(_key("i", "journal/")))[0]
        await self._edit(storage, slot, lambda e: e["recs"][0][1].update(o="forged"), sealed=False)
        await self._refused(storage, ledger, "i", "fails its integrity check")

    async def test_record_moved_to_another_session_or_slot_fails_the_integrity_check(self, storage: Storage) -> None:
        ledger = await self._failed(storage, "one")
        await self._failed(storage, "two")
        moved = await storage.get(_key("one", "snapshot"))
        await storage.delete(_key("two", "snapshot"))
        await storage.set(_key("two", "snapshot"), moved)
        await self._refused(storage, ledger, "two", "fails its integrity check")
        crashed = await self._crashed(storage, "slots")
        [first] = await storage.list_keys(_key("slots", "journal/"))
        entry = await storage.get(first)
        assert isinstance(entry, dict)
        # Copied to the next slot, renumbered so the slot fits and at the same version: only the
        # seal, bound to the key, tells it was moved.
        await storage.set(_key("slots", f"journal/{entry['e'] + 1:04d}"), {**entry, "e": entry["e"] + 1})
        await self._refused(storage, crashed, "slots", "fails its integrity check")

    async def test_older_snapshot_written_back_fails_the_integrity_check(self, storage: Storage) -> None:
        ledger = await self._crashed(storage, "old")
        older = await storage.get(_key("old", "snapshot"))
        ledger.fail = {"e"}
        with pytest.raises(WorkflowError):
            await ledger.workflow(storage).resume("old")
        ledger.fail.clear()
        await storage.set(_key("old", "snapshot"), older)
        await self._refused(storage, ledger, "old", "fails its integrity check")

    # --- fuzzing: any change anywhere --------------------------------------------------------

    async def _tamper_one_place(self, storage: Storage, case: _Case, *, sealed: bool) -> tuple[_Ledger, str, bool]:
        """A failed or crashed run's image with one place in one of its records replaced by any JSON.

        Returns the ledger, the session, and whether the replacement changed anything.
        """
        crashed, record_pick, place_pick, value = case
        session = f"fuzz-{next(_sessions)}"
        ledger = await (self._crashed if crashed else self._failed)(storage, session)
        keys = [_key(session, "snapshot"), *sorted(await storage.list_keys(_key(session, "journal/")))]
        where = keys[record_pick % len(keys)]
        record = await storage.get(where)
        assert isinstance(record, dict)
        places = _paths(record)
        changed = _replace(record, places[place_pick % len(places)], value)
        if sealed:
            await reseal(storage, where, record)
        elif changed:
            await storage.set(where, record)
        return ledger, session, changed

    # Hypothesis runs many examples per call, so these open the storage themselves (no async
    # fixture), and every choice is drawn before the example starts.
    @_fuzz
    @given(case=_cases)
    async def test_any_change_to_a_stored_record_is_refused(self, storage_url: str, case: _Case) -> None:
        async with await create_storage(storage_url) as storage:
            ledger, session, changed = await self._tamper_one_place(storage, case, sealed=False)
            if changed:
                await self._refused(storage, ledger, session, None)

    @_fuzz
    @given(case=_cases)
    async def test_resealed_record_of_any_shape_is_resumed_or_refused_never_a_crash(
        self, storage_url: str, case: _Case
    ) -> None:
        # A writer that knows the digest scheme: only validation stands between the record and the engine.
        async with await create_storage(storage_url) as storage:
            ledger, session, _ = await self._tamper_one_place(storage, case, sealed=True)
            with contextlib.suppress(CorruptCheckpointError):
                await ledger.workflow(storage).resume(session)

    # --- with a key ------------------------------------------------------------------------

    async def test_keyed_checkpoint_resumes_only_with_its_key(self, storage: Storage) -> None:
        ledger = await self._failed(storage, "k", key=KEY)
        with pytest.raises(CorruptCheckpointError, match="sealed with a checkpoint key"):
            await ledger.workflow(storage).resume("k")
        with pytest.raises(CorruptCheckpointError, match="written with another key"):
            await ledger.workflow(storage, b"x" * 32).resume("k")
        assert ledger.runs["d"] == 1
        assert (await ledger.workflow(storage, KEY).resume("k")).state["total"] == 5

    async def test_keyed_checkpoint_refuses_a_recomputed_digest_or_mac(self, storage: Storage) -> None:
        ledger = await self._failed(storage, "k", key=KEY)
        where = _key("k", "snapshot")
        snapshot = await storage.get(where)
        assert isinstance(snapshot, dict)
        # Someone without the key forges a completed run: a fresh digest, then a MAC under a guessed key.
        await reseal(storage, where, {**snapshot, "status": "completed"})
        with pytest.raises(CorruptCheckpointError, match="not sealed with the checkpoint key"):
            await ledger.workflow(storage, KEY).resume("k")
        await reseal(storage, where, {**snapshot, "status": "completed"}, checkpoint_key=b"guess" * 8)
        with pytest.raises(CorruptCheckpointError, match="integrity check"):
            await ledger.workflow(storage, KEY).resume("k")
        assert ledger.runs["d"] == 1

    # --- an agent's paused session ---------------------------------------------------------------

    def _agent(self, storage: Storage, paid: list[int], key: bytes | None = None) -> Agent:
        @tool(requires_approval=True)
        async def pay(amount: int) -> str:
            """Pay an amount."""
            paid.append(amount)
            return f"paid {amount}"

        model = ScriptedModel(
            [tool_calls_reply(ToolCall(id="call-pay", name="pay", arguments='{"amount": 30}')), "Payment handled."]
        )
        return Agent(model, tools=[pay], storage=storage, session_id="pay", checkpoint_key=key)

    @pytest.mark.parametrize(
        ("edit", "problem"),
        [
            (lambda d: d["pending"][0].update(call_id=7), r"malformed.*'pending\.0\.call_id'"),
            (lambda d: d["state"].update(usage=[1, 2, 3]), r"malformed.*'state\.usage\.3'"),
            (lambda d: d["state"].update(turns="1"), r"malformed.*'state\.turns'"),
            (lambda d: d["state"]["messages"][0].update(role="boss"), r"malformed.*'state\.messages\.0\.role'"),
            (lambda d: d.update(pending="call-pay"), r"malformed.*'pending'"),
            (lambda d: d.update(plugins_before={"guard": "taint"}), r"malformed.*'plugins_before\.guard'"),
            (lambda d: d.pop("state"), r"malformed.*'state'"),
        ],
    )
    async def test_paused_agent_session_of_wrong_shape_names_the_field(
        self, storage: Storage, edit: Edit, problem: str
    ) -> None:
        paid: list[int] = []
        assert isinstance(await self._agent(storage, paid).run("pay 30"), PausedOutput)
        await self._edit(storage, session_key("pay"), edit)
        with pytest.raises(CorruptCheckpointError, match=f"stored session 'pay'.*{problem}"):
            await self._agent(storage, paid).resume({"call-pay": True}, session_id="pay")
        assert paid == []

    async def test_paused_agent_session_with_edited_approval_is_refused(self, storage: Storage) -> None:
        paid: list[int] = []
        assert isinstance(await self._agent(storage, paid, KEY).run("pay 30"), PausedOutput)

        def raise_amount(document: dict[str, Any]) -> None:
            document["pending"][0]["arguments"] = {"amount": 3000}
            document["state"]["messages"][-1]["tool_calls"][0]["arguments"] = '{"amount": 3000}'

        await self._edit(storage, session_key("pay"), raise_amount, sealed=False)
        with pytest.raises(CorruptCheckpointError, match=r"stored session 'pay'.*integrity check"):
            await self._agent(storage, paid, KEY).resume({"call-pay": True}, session_id="pay")
        assert paid == []
