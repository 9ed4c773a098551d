"""RAG quick-start: ingest a small bilingual knowledge base, then let an agent search it.

Offline by default: chunks are embedded in-process by gecko-ai-embedders-onnx and stored in a
LanceDB directory (`./my_knowledge_db` in the working folder). Running the script again embeds
nothing: unchanged files are skipped. The retrieval tool's answers (passages with source and id,
marked untrusted) are printed for an English and a Chinese question.

The agent step needs a chat model: a provider when OPENAI_API_KEY or ZHIPU_API_KEY is set (the
embedder then is OpenAI's text-embedding-3-small with OPENAI_API_KEY), else the local SmolLM2
model when gecko-ai-models-llamacpp is installed; without either the script stops after retrieval.

    pip install gecko-ai-vector-lancedb gecko-ai-embedders-onnx   # see gecko-embedders-onnx/README.md
    python examples/rag/quickstart.py
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from pathlib import Path

from gecko.core.builder import AgentBuilder
from gecko.plugins.knowledge import IngestionPipeline, RetrievalTool
from gecko.plugins.models import ChatModel, Embedder
from gecko.plugins.storage.factory import create_storage

DOCS = Path(__file__).parent / "docs"
QUESTIONS = ("How long until travel expenses are reimbursed?", "公司的报销政策是怎样的?")


def pick_embedder() -> Embedder:
    """OpenAI's embeddings with a key, else the in-process ONNX model (no network)."""
    if os.environ.get("OPENAI_API_KEY"):
        from gecko.plugins.models.embedding import LiteLLMEmbedder, ModelConfig

        config = ModelConfig(model_name="text-embedding-3-small", api_key=os.environ["OPENAI_API_KEY"])
        return LiteLLMEmbedder(config=config, dimension=1536)
    from gecko_embedders_onnx import OnnxEmbedder

    return OnnxEmbedder()


def pick_model() -> ChatModel | None:
    """A provider named by an API key, else the local model if installed, else None."""
    if os.environ.get("ZHIPU_API_KEY"):
        from gecko.plugins.models import ZhipuChat

        return ZhipuChat(api_key=os.environ["ZHIPU_API_KEY"], model="glm-4-flash")
    if os.environ.get("OPENAI_API_KEY"):
        from gecko.plugins.models import OpenAIChat

        return OpenAIChat(model="gpt-4o-mini")
    if importlib.util.find_spec("gecko_models_llamacpp") is not None:
        from gecko_models_llamacpp import LlamaCppChat

        return LlamaCppChat(max_tokens=96, temperature=0.2, seed=7)
    return None


async def main() -> None:
    # 1. The vector store and the embedder.
    vector_store = await create_storage("lancedb://./my_knowledge_db")
    embedder = pick_embedder()

    # 2. Ingest (run it as often as you like: unchanged files are skipped, with no embedding call).
    pipeline = IngestionPipeline(vector_store, embedder)
    summary = await pipeline.run([DOCS])
    print(f"ingested {summary.files} files: {summary.chunks} chunks, {summary.embedded} embedded, "
          f"{summary.skipped} unchanged, in {summary.seconds:.1f} s")  # fmt: skip

    # 3. The retrieval tool: hybrid search (BM25 + dense, reciprocal rank fusion), cited passages.
    rag_tool = RetrievalTool(vector_store=vector_store, embedder=embedder, top_k=3)
    for question in QUESTIONS:
        answer = json.loads(await rag_tool(query=question))
        print(f"\n{question}")
        for chunk in answer["chunks"]:
            print(f"  [{Path(chunk['source']).name}#{chunk['id'][:8]}] {chunk['text'][:90]!r}")

    # 4. An agent that consults the knowledge base first.
    llm = pick_model()
    if llm is None:
        print("\nno chat model: set OPENAI_API_KEY or ZHIPU_API_KEY, or install gecko-ai-models-llamacpp")
        return
    agent = (
        AgentBuilder()
        .with_model(llm)
        .with_tools([rag_tool])
        .with_system_prompt("你是一个助手,请优先查阅知识库回答问题。Answer from the knowledge base and cite it.")
        .build()
    )
    response = await agent.run(QUESTIONS[1])
    print(f"\nagent: {response.content}")


if __name__ == "__main__":
    asyncio.run(main())
