"""`LongTermMemory`: a token window plus recall of older turns and facts from a vector store.

The window (`TokenMemory` or `SummaryTokenMemory`) chooses the recent turns as usual. Every
turn that falls out of it is embedded once and stored in a vector store under the memory's
namespace; on each call the newest user message is the query, and the stored turns and facts
that are relevant (cosine similarity at least `min_relevance`) and recent (a bonus halving every
`recency_half_life` turns) come back as one system message placed after the leading system
messages, within `recall_tokens`. The model so sees at most `window.max_tokens + recall_tokens`.

Records are JSON data in any vector store (`memory://`, `chroma://`, `lancedb://`), one
collection for all namespaces, filtered by `namespace`: give each session its own
(`namespace=session_id`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from gecko.core.memory import RECALL_HEADER, TokenMemory, memory_message
from gecko.errors import ConfigurationError
from gecko.plugins.models import Embedder, checked_vectors
from gecko.plugins.vector import VectorHit, VectorRecord, VectorStore, validate_collection_name
from gecko.plugins.vector.filters import MetadataValue
from gecko.types import Message, Role

__all__ = ("LongTermMemory", "RECALL_HEADER")


@dataclass(frozen=True)
class _Recalled:
    text: str
    turn: int
    score: float


class LongTermMemory:
    """A `TokenMemory` window that also recalls relevant older turns and facts from a vector store.

    Args:
        window: the short-term memory choosing recent turns (`TokenMemory`, `SummaryTokenMemory`).
        vector_store: where older turns and facts are kept.
        embedder: embeds turns, facts and queries.
        namespace: separates conversations (use the session id); recall only sees its own.
        collection: the vector store collection holding every namespace's records.
        recall_k: at most this many records recalled per call.
        recall_tokens: the recall message's budget, counted as the window counts.
        min_relevance: cosine similarity a record needs to be recalled.
        recency_weight: the score bonus of a record from the newest turn.
        recency_half_life: turns after which the recency bonus halves.
    """

    def __init__(
        self,
        window: TokenMemory,
        vector_store: VectorStore,
        embedder: Embedder,
        *,
        namespace: str = "default",
        collection: str = "long_term_memory",
        recall_k: int = 4,
        recall_tokens: int = 400,
        min_relevance: float = 0.25,
        recency_weight: float = 0.1,
        recency_half_life: float = 100.0,
    ) -> None:
        validate_collection_name(collection)
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError("namespace must be a non-empty string (the session id, say)")
        if recall_k < 1 or recall_tokens < 1 or recency_half_life <= 0:
            raise ConfigurationError("recall_k, recall_tokens and recency_half_life must be positive")
        self.window = window
        self.embedder = embedder
        self.records = vector_store.collection(collection)
        self.namespace = namespace
        self.recall_k = recall_k
        self.recall_tokens = recall_tokens
        self.min_relevance = min_relevance
        self.recency_weight = recency_weight
        self.recency_half_life = recency_half_life
        self._archived: set[str] = set()
        self._latest_turn = 0

    @property
    def max_tokens(self) -> int:
        """The most the prepared messages may count: the window's budget plus the recall budget."""
        return self.window.max_tokens + self.recall_tokens

    async def remember(self, fact: str) -> None:
        """Store `fact` (e.g. "The user's name is Li Wei") for recall in this namespace."""
        text = fact.strip()
        if not text:
            raise ConfigurationError("a fact to remember must not be empty")
        record_id = self._record_id("fact", text)
        [vector] = checked_vectors(self.embedder, await self.embedder.embed([text]), 1)
        metadata: dict[str, MetadataValue] = {"namespace": self.namespace, "kind": "fact", "turn": self._latest_turn}
        await self.records.upsert([VectorRecord(record_id, vector, text, metadata)])
        self._archived.add(record_id)

    async def prepare(self, messages: Sequence[Message]) -> list[Message]:
        """The window's messages, with a recall message after the leading system messages when relevant."""
        window = await self.window.prepare(messages)
        conversation = [message for message in messages if message.role is not Role.SYSTEM]
        kept = {id(message) for message in window}
        first_kept = next((i for i, message in enumerate(conversation) if id(message) in kept), len(conversation))
        self._latest_turn = max(self._latest_turn, len(conversation))
        await self._archive(conversation[:first_kept])
        query = next((m.text for m in reversed(conversation) if m.role is Role.USER and m.text.strip()), "")
        if not query:
            return window
        recalled = await self._recall(query, first_kept)
        if not recalled:
            return window
        head = 0
        while head < len(window) and window[head].role is Role.SYSTEM:
            head += 1
        return [*window[:head], self._recall_message(recalled), *window[head:]]

    # --- storing ------------------------------------------------------------------------

    def _record_id(self, kind: str, text: str, turn: int = 0) -> str:
        key = f"{self.namespace}\x00{kind}\x00{turn}\x00{text}"
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    async def _archive(self, evicted: Sequence[Message]) -> None:
        pending: dict[str, tuple[str, int, str]] = {}
        for turn, message in enumerate(evicted):
            text = message.text.strip()
            if not text:
                continue
            line = f"{message.role.value}: {text}"
            record_id = self._record_id("turn", line, turn)
            if record_id not in self._archived:
                pending[record_id] = (line, turn, message.role.value)
        if not pending:
            return
        stored = {record.id for record in await self.records.get(list(pending))}
        missing = [record_id for record_id in pending if record_id not in stored]
        if missing:
            texts = [pending[record_id][0] for record_id in missing]
            vectors = checked_vectors(self.embedder, await self.embedder.embed(texts), len(texts))
            await self.records.upsert(
                VectorRecord(
                    record_id,
                    vector,
                    pending[record_id][0],
                    {"namespace": self.namespace, "kind": "turn", "turn": pending[record_id][1]},
                )
                for record_id, vector in zip(missing, vectors, strict=True)
            )
        self._archived.update(pending)

    # --- recalling ----------------------------------------------------------------------

    async def _recall(self, query: str, window_start: int) -> list[_Recalled]:
        if await self.records.count(where={"namespace": self.namespace}) == 0:
            return []
        [vector] = checked_vectors(self.embedder, [await self.embedder.embed_query(query)], 1)
        hits = await self.records.query(vector, top_k=self.recall_k * 4, where={"namespace": self.namespace})
        candidates = [self._scored(hit) for hit in hits if self._recallable(hit, window_start)]
        candidates.sort(key=lambda item: -item.score)
        chosen: list[_Recalled] = []
        for candidate in candidates[: self.recall_k]:
            if self.window.count(self._recall_message([*chosen, candidate])) <= self.recall_tokens:
                chosen.append(candidate)
        return chosen

    def _recallable(self, hit: VectorHit, window_start: int) -> bool:
        if hit.score < self.min_relevance:
            return False
        turn = hit.metadata.get("turn")
        return hit.metadata.get("kind") == "fact" or (isinstance(turn, int) and turn < window_start)

    def _scored(self, hit: VectorHit) -> _Recalled:
        turn = hit.metadata.get("turn")
        age = self._latest_turn - turn if isinstance(turn, int) else 0
        recency = self.recency_weight * 0.5 ** (max(age, 0) / self.recency_half_life)
        return _Recalled(hit.text, turn if isinstance(turn, int) else 0, hit.score + recency)

    @staticmethod
    def _recall_message(recalled: Sequence[_Recalled]) -> Message:
        lines = [f"- (turn {item.turn}) {item.text}" for item in recalled]
        return memory_message(RECALL_HEADER, "\n".join(lines))
