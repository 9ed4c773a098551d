"""`lancedb://`: a Gecko vector store over LanceDB, one Arrow table per collection.

`lancedb://./dir` (or `lancedb:///abs/dir`) opens a LanceDB database in that directory.
Option: `?ann_threshold=N` (default `ANN_THRESHOLD`).

Each collection is a Lance table with columns `id`, `vector` (fixed-size float32 list), `text`,
`metadata` (the metadata as JSON, returned as stored) and `filter` (a JSON column keyed by type
and hex-encoded name, e.g. `n_79656172` for the number `year`), which the portable filter
language is compiled against: a comparison only ever sees values of its own type, so strings,
numbers and booleans never mix, whatever the records hold.

Search is exact (brute force) until a table reaches `ann_threshold` rows; the upsert that crosses
it builds an IVF-PQ index with cosine distance, and indexed queries re-rank candidates on the full
vectors (`REFINE_FACTOR`), so returned scores stay exact cosine similarities. Rows written after
the index was built are searched exactly beside it. `search_text` runs a BM25 full-text query over
`text` through a native Lance FTS index, created on first use.

LanceDB's Python client blocks, so every call runs in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import cast

import anyio.to_thread
import lancedb
import pyarrow as pa  # type: ignore[import-untyped]
from lancedb.index import FTS, IvfPq
from lancedb.query import LanceVectorQueryBuilder
from lancedb.table import Table

from gecko.errors import InvalidStorageURLError, StorageError
from gecko.plugins.storage import StorageURL
from gecko.plugins.vector import (
    Metadata,
    VectorHit,
    VectorRecord,
    VectorStore,
    VectorStoreCapabilities,
    local_path,
    validate_collection_name,
)
from gecko.plugins.vector.filters import AllOf, Condition, Filter, MetadataValue, Scalar, parse_filter
from gecko_vector_lancedb._version import __version__

__all__ = (
    "LanceDBVectorStore",
    "lance_where",
    "filter_document",
    "table_schema",
    "ANN_THRESHOLD",
    "REFINE_FACTOR",
    "__version__",
)

ANN_THRESHOLD = 100_000
"""Rows at which a collection gets an ANN index; below it every query is an exact scan."""

REFINE_FACTOR = 10
"""Indexed queries fetch `top_k * REFINE_FACTOR` candidates and re-rank them on full vectors."""

_SQL_OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "in": "IN", "nin": "NOT IN"}
_READ_COLUMNS = ["id", "text", "metadata"]


def _kind(value: MetadataValue) -> str:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n"
    return "l" if isinstance(value, list) else "s"


def _filter_key(kind: str, field: str) -> str:
    return f"{kind}_{field.encode().hex()}"


def filter_document(metadata: Metadata) -> str:
    """The `filter` column's JSON for `metadata`: each key prefixed by its value's type, name hex-encoded."""
    return json.dumps({_filter_key(_kind(value), key): value for key, value in metadata.items()})


def _literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))
    return "'" + value.replace("'", "''") + "'"


def _condition(condition: Condition) -> str:
    op, value = condition.op, condition.value
    if op in ("contains", "not_contains"):
        path = "$." + _filter_key("l", condition.field)
        found = f"coalesce(json_array_contains(filter, '{path}', {_literal(cast(str, value))}), false)"
        return found if op == "contains" else f"NOT {found}"
    sample = value[0] if isinstance(value, tuple) else value
    getter = {"b": "json_get_bool", "n": "json_get_float", "s": "json_get_string"}[_kind(sample)]
    column = f"{getter}(filter, '{_filter_key(_kind(sample), condition.field)}')"
    operand = "(" + ", ".join(map(_literal, value)) + ")" if isinstance(value, tuple) else _literal(value)
    test = f"{column} {_SQL_OPERATORS[op]} {operand}"
    # A record lacking the field (NULL here) matches the negative operators, as the language says.
    return f"({column} IS NULL OR {test})" if op in ("ne", "nin") else test


def lance_where(where: Filter) -> str:
    """Translate a parsed Gecko filter into a Lance SQL predicate over the `filter` column."""
    if isinstance(where, Condition):
        return _condition(where)
    joiner = " AND " if isinstance(where, AllOf) else " OR "
    return "(" + joiner.join(lance_where(child) for child in where.children) + ")"


def _ids_predicate(ids: list[str] | None, where: Filter | None) -> str | None:
    parts = []
    if ids is not None:
        parts.append("id IN (" + ", ".join(map(_literal, ids)) + ")")
    if where is not None:
        parts.append(lance_where(where))
    return " AND ".join(parts) or None


def _vectors(records: list[VectorRecord], dimension: int) -> pa.FixedSizeListArray:
    # The core hands vectors over as array("d"): their bytes become one Arrow buffer, no Python floats.
    buffer = pa.py_buffer(b"".join(record.vector.tobytes() for record in records))  # type: ignore[attr-defined]
    values = pa.Array.from_buffers(pa.float64(), len(records) * dimension, [None, buffer]).cast(pa.float32())
    return pa.FixedSizeListArray.from_arrays(values, dimension)


def _metadata(text: str) -> Metadata:
    return cast("Metadata", json.loads(text))


def table_schema(dimension: int) -> pa.Schema:
    """The Arrow schema of a collection's table for vectors of `dimension`."""
    return pa.schema(
        [
            pa.field("id", pa.utf8(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
            pa.field("text", pa.utf8(), nullable=False),
            pa.field("metadata", pa.utf8(), nullable=False),
            pa.field("filter", pa.json_(pa.utf8()), nullable=False),
        ]
    )


class LanceDBVectorStore(VectorStore):
    """A LanceDB database in a local directory; each collection is one table."""

    scheme = "lancedb"
    vector_capabilities = VectorStoreCapabilities(persistent=True)

    def __init__(self, connection: lancedb.DBConnection, *, ann_threshold: int = ANN_THRESHOLD) -> None:
        super().__init__()
        self._connection = connection
        self._tables: dict[str, Table] = {}
        self._indexed: set[str] = set()
        self.ann_threshold = ann_threshold

    @classmethod
    async def from_url(cls, url: StorageURL) -> LanceDBVectorStore:
        path = local_path(url)
        options = dict(url.query)
        threshold = options.pop("ann_threshold", str(ANN_THRESHOLD))
        if options or not threshold.isdigit() or int(threshold) < 1:
            raise InvalidStorageURLError(
                f"lancedb URL {url.raw!r}: the only option is ann_threshold=<positive integer>"
            )
        # Every read checks for a newer table version, so writes by other handles and processes show.
        try:
            connection = await anyio.to_thread.run_sync(
                partial(lancedb.connect, path, read_consistency_interval=timedelta(0))
            )
        except Exception as exc:  # a path it cannot use (a file, no permission)
            raise StorageError(f"cannot open lancedb store {path!r}: {type(exc).__name__}: {exc}") from exc
        return cls(connection, ann_threshold=int(threshold))

    async def _table(self, collection: str) -> Table | None:
        table = self._tables.get(collection)
        if table is None:
            try:
                table = await self._blocking(self._connection.open_table, collection)
            except ValueError:  # LanceDB's "Table ... was not found"
                return None
            self._tables[collection] = table
        return table

    async def _existing(self, collection: str) -> Table:
        table = await self._table(collection)
        assert table is not None, "the core calls this only for collections that exist"
        return table

    async def _raw_dimension(self, collection: str) -> int | None:
        table = await self._table(collection)
        if table is None:
            return None
        vector_type = table.schema.field("vector").type
        return int(vector_type.list_size)

    async def _raw_upsert(self, collection: str, dimension: int, records: list[VectorRecord]) -> None:
        schema = table_schema(dimension)
        batch = pa.Table.from_pydict(
            {
                "id": [record.id for record in records],
                "vector": _vectors(records, dimension),
                "text": [record.text for record in records],
                "metadata": [json.dumps(dict(record.metadata), ensure_ascii=False) for record in records],
                "filter": [filter_document(record.metadata) for record in records],
            },
            schema=schema,
        )
        table = await self._table(collection)
        if table is None:
            table = await self._blocking(self._connection.create_table, collection, batch, schema=schema)
            self._tables[collection] = table
        else:
            merge = table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
            await self._blocking(merge.execute, batch)
        await self._index_when_large(collection, table)

    async def _index_when_large(self, collection: str, table: Table) -> None:
        if collection in self._indexed:
            return
        indexes = await self._blocking(table.list_indices)
        if any("vector" in index.columns for index in indexes):
            self._indexed.add(collection)
        elif await self._blocking(table.count_rows) >= self.ann_threshold:
            await self._blocking(table.create_index, "vector", config=IvfPq(distance_type="cosine"))
            self._indexed.add(collection)

    async def _raw_query(
        self, collection: str, vector: list[float], top_k: int, where: Filter | None
    ) -> list[VectorHit]:
        table = await self._existing(collection)
        search = cast(LanceVectorQueryBuilder, table.search(vector, vector_column_name="vector"))
        # The refine step only acts where an index answers (here or built by another process).
        search = search.distance_type("cosine").limit(top_k).refine_factor(REFINE_FACTOR)
        if where is not None:
            search = search.where(lance_where(where), prefilter=True)
        rows = await self._blocking(search.select([*_READ_COLUMNS, "_distance"]).to_arrow)
        return [
            VectorHit(row["id"], 1.0 - row["_distance"], row["text"], _metadata(row["metadata"]))
            for row in rows.to_pylist()
        ]

    async def _raw_fetch(self, collection: str, ids: list[str] | None, where: Filter | None) -> list[VectorRecord]:
        table = await self._existing(collection)
        query = table.search().select([*_READ_COLUMNS, "vector"]).limit(None)
        predicate = _ids_predicate(ids, where)
        if predicate is not None:
            query = query.where(predicate)
        rows = await self._blocking(query.to_arrow)
        return [
            VectorRecord(row["id"], row["vector"], row["text"], _metadata(row["metadata"])) for row in rows.to_pylist()
        ]

    async def _raw_remove(self, collection: str, ids: list[str] | None, where: Filter | None) -> None:
        table = await self._existing(collection)
        predicate = _ids_predicate(ids, where)
        assert predicate is not None, "the core never deletes without ids or a filter"
        await self._blocking(table.delete, predicate)

    async def _raw_count(self, collection: str, where: Filter | None) -> int:
        table = await self._existing(collection)
        return await self._blocking(table.count_rows, None if where is None else lance_where(where))

    async def _raw_list_collections(self) -> list[str]:
        listed = await self._blocking(self._connection.list_tables)
        return list(listed.tables)

    async def _raw_drop_collection(self, collection: str) -> bool:
        self._tables.pop(collection, None)
        self._indexed.discard(collection)
        try:
            await self._blocking(self._connection.drop_table, collection)
        except ValueError:  # LanceDB's "Table ... was not found"
            return False
        return True

    async def _raw_close(self) -> None:
        self._tables.clear()

    async def search_text(
        self, collection: str, text: str, *, top_k: int = 10, where: Mapping[str, object] | None = None
    ) -> list[VectorHit]:
        """BM25 full-text search over the records' text; `score` is the BM25 score, higher is better.

        The FTS index is built on first use; records written later are searched too.
        """
        self._check_open()
        validate_collection_name(collection)
        where_tree = parse_filter(where)
        table = await self._table(collection)
        if table is None:
            return []
        indexes = await self._blocking(table.list_indices)
        if not any(index.index_type == "FTS" for index in indexes):
            await self._blocking(table.create_index, "text", config=FTS())
        search = table.search(text, query_type="fts").limit(top_k)
        if where_tree is not None:
            search = search.where(lance_where(where_tree), prefilter=True)
        rows = await self._blocking(search.select([*_READ_COLUMNS, "_score"]).to_arrow)
        return [
            VectorHit(row["id"], float(row["_score"]), row["text"], _metadata(row["metadata"]))
            for row in rows.to_pylist()
        ]
