"""The seed's RAG quick-start, verbatim, against chroma:// with the API embedder and chat model on a
local OpenAI-protocol server (found through the providers' environment variables).

First the quick-start runs with its commented ingestion step uncommented (stopping after it),
then the quick-start itself in a fresh process: the scripted model asks for the retrieval tool, and the
test checks what the tool handed the model (cited chunks from Chroma, marked untrusted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gecko.testing.documents import pdf_bytes
from gecko.testing.embedders import HashingEmbedder
from gecko.testing.models import tool_calls_reply
from gecko.testing.server import OpenAIServer

pytestmark = pytest.mark.slow

# The seed's quick-start, verbatim.
SEED = """
import asyncio
import os
from gecko.core.builder import AgentBuilder
from gecko.plugins.models import ZhipuChat
from gecko.plugins.models.embedding import LiteLLMEmbedder, ModelConfig
from gecko.plugins.storage.factory import create_storage
from gecko.plugins.knowledge import IngestionPipeline, RetrievalTool
async def main():
    # 1. 准备向量存储与 Embedder
    vector_store = await create_storage("chroma://./my_knowledge_db")
    embedder = LiteLLMEmbedder(
        config=ModelConfig(
            model_name="text-embedding-3-small",
            api_key=os.getenv("OPENAI_API_KEY")
        ),
        dimension=1536,
    )
    # 2. 知识入库 (仅需运行一次)
    # pipeline = IngestionPipeline(vector_store, embedder)
    # await pipeline.run(["company_policy.pdf", "api_docs.md"])
    # 3. 创建检索工具
    rag_tool = RetrievalTool(
        vector_store=vector_store,
        embedder=embedder,
        top_k=3,
    )
    # 4. 构建 Agent
    llm = ZhipuChat(
        api_key=os.getenv("ZHIPU_API_KEY"),
        model="glm-4-flash",
    )
    agent = (
        AgentBuilder()
        .with_model(llm)
        .with_tools([rag_tool])
        .with_system_prompt("你是一个助手,请优先查阅知识库回答问题。")
        .build()
    )
    # 5. 提问
    response = await agent.run("公司的报销政策是怎样的?")
    print(response.content)
if __name__ == "__main__":
    asyncio.run(main())
"""


# The quick-start's own ingestion step, uncommented, followed by the summary and an early return.
COMMENTED_INGESTION = """    # pipeline = IngestionPipeline(vector_store, embedder)
    # await pipeline.run(["company_policy.pdf", "api_docs.md"])
"""
INGEST = SEED.replace(
    COMMENTED_INGESTION,
    """    pipeline = IngestionPipeline(vector_store, embedder)
    summary = await pipeline.run(["company_policy.pdf", "api_docs.md"])
    print(summary.files, summary.chunks, summary.embedded, summary.skipped)
    return
""",
)
assert INGEST != SEED


def run(script: str, folder: Path, server: OpenAIServer) -> str:
    environment = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": server.base_url,
        "ZHIPU_API_KEY": "zhipu-test",
        "ZHIPU_API_BASE": server.base_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_seed_rag_quick_start_runs_verbatim_against_chroma_and_an_api_embedder(tmp_path: Path) -> None:
    (tmp_path / "company_policy.pdf").write_bytes(
        pdf_bytes("Travel expenses are reimbursed within 30 days with receipts.", "Hotels: up to 180 EUR a night.")
    )
    (tmp_path / "api_docs.md").write_text(
        "# API\n\n## Authentication\n\nSend a bearer token.\n\n## Reimbursement API\n\nPOST /claims files a claim.",
        encoding="utf-8",
    )
    chat = [
        tool_calls_reply(("search_knowledge", json.dumps({"query": "travel expenses reimbursed receipts"}))),
        "差旅费用在三十天内凭发票报销。",
    ]
    embedder = HashingEmbedder(1536)
    with OpenAIServer(chat, embed=lambda texts: [embedder.vector(text) for text in texts]) as server:
        assert run(INGEST, tmp_path, server).split() == ["2", "4", "4", "0"]
        assert run(INGEST, tmp_path, server).split() == ["2", "4", "0", "2"]  # unchanged: no embedding call
        embedding_requests = len([r for r in server.requests if r.path.endswith("/embeddings")])
        assert run(SEED, tmp_path, server).strip() == "差旅费用在三十天内凭发票报销。"
        requests = server.chat_requests()
        assert len([r for r in server.requests if r.path.endswith("/embeddings")]) == embedding_requests + 1
    assert requests[0]["model"].endswith("glm-4-flash")
    tool_message = next(m for m in requests[1]["messages"] if m["role"] == "tool")
    answer = json.loads(tool_message["content"])
    assert (answer["content_origin"], answer["trust"]) == ("retrieved", "untrusted")
    assert answer["chunks"][0]["source"] == "company_policy.pdf"
    assert "reimbursed within 30 days" in answer["chunks"][0]["text"]
    assert len(answer["chunks"]) == 3
