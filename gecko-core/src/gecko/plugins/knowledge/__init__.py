"""The knowledge kind: ingestion into a vector store, and dense, lexical and hybrid retrieval.

```python
from gecko.plugins.knowledge import IngestionPipeline, RetrievalTool

pipeline = IngestionPipeline(vector_store, embedder)
summary = await pipeline.run(["company_policy.pdf", "docs/"])  # IngestionSummary(files, chunks, skipped, ...)
rag_tool = RetrievalTool(vector_store=vector_store, embedder=embedder, top_k=3)
```

The knowledge layer lives in the core because it is logic over two core contracts (vector
stores and embedders) with no required dependency: BM25 and the CJK tokenizer are built in, and
the optional libraries (pypdf for PDF, tqdm for the progress bar: `gecko-ai-core[knowledge]`)
are imported on first use. `RetrievalTool` (a `gecko.core.toolbox.Tool`) and `LongTermMemory`
(a `gecko.core.memory` window) belong to the engine layer and resolve from there on first use,
so importing this module stays cheap and never imports upward.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gecko.plugins.knowledge.documents import Chunk, Document, DocumentFormat
from gecko.plugins.knowledge.ingestion import IngestionPipeline, IngestionSummary
from gecko.plugins.knowledge.lexical import BM25Index, lexical_tokens
from gecko.plugins.knowledge.loaders import load_bytes, supported_suffixes
from gecko.plugins.knowledge.retrieval import SEARCH_MODES, RetrievedChunk, Retriever, SearchMode
from gecko.plugins.knowledge.splitters import (
    AutoSplitter,
    MarkdownSplitter,
    RecursiveSplitter,
    SentenceSplitter,
    Splitter,
    TokenSplitter,
)

if TYPE_CHECKING:
    from gecko.core.long_term_memory import LongTermMemory
    from gecko.core.retrieval import RetrievalTool

__all__ = (
    "IngestionPipeline",
    "IngestionSummary",
    "Retriever",
    "RetrievedChunk",
    "RetrievalTool",
    "LongTermMemory",
    "SearchMode",
    "SEARCH_MODES",
    "Document",
    "Chunk",
    "DocumentFormat",
    "Splitter",
    "AutoSplitter",
    "RecursiveSplitter",
    "TokenSplitter",
    "SentenceSplitter",
    "MarkdownSplitter",
    "BM25Index",
    "lexical_tokens",
    "load_bytes",
    "supported_suffixes",
)

_ENGINE_LAYER = {"RetrievalTool": "gecko.core.retrieval", "LongTermMemory": "gecko.core.long_term_memory"}


def __getattr__(name: str) -> Any:
    module = _ENGINE_LAYER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
