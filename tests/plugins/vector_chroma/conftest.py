"""A real Chroma server for the HTTP-mode tests, started once per session with the `chroma` CLI."""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import chromadb
import pytest
from chromadb.config import DEFAULT_TENANT, Settings

from gecko.testing.processes import ServerProcess, free_port


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a Chroma server running from a temporary directory."""
    executable = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert executable, "the chroma CLI (from the chromadb package) is not installed"
    folder = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    with ServerProcess(
        [executable, "run", "--path", str(folder / "data"), "--host", "127.0.0.1", "--port", str(port)],
        log=folder / "server.log",
        ready=lambda: _answers(port),
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    ):
        yield f"127.0.0.1:{port}"


@pytest.fixture
def chroma_database(chroma_server: str) -> str:
    """A new, empty database on the session's server, for one test."""
    host, port = chroma_server.split(":")
    admin = chromadb.AdminClient(
        Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=host,
            chroma_server_http_port=int(port),
            anonymized_telemetry=False,
        )
    )
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin.create_database(name, tenant=DEFAULT_TENANT)
    return name
