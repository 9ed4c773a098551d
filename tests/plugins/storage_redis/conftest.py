"""Finding Redis for these tests: `REDIS_URL`, else 127.0.0.1:6379, else a `redis-server` on PATH.

With none of them the tests fail and say how to provide one: Redis tests never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gecko.testing.processes import ServerProcess, free_port


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ServerProcess):
    """A `redis-server` process owned by a test, restartable on the same port and data folder."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("this test starts its own Redis: install redis-server (e.g. apt-get install redis-server)")
        self.folder = folder
        self.port = free_port()
        super().__init__(
            [
                binary,
                "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            ],
            log=folder / "redis-server.log",
            ready=lambda: _answers("127.0.0.1", self.port),
            startup_seconds=10,
        )  # fmt: skip

    @property
    def socket_path(self) -> Path:
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if _answers("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    if shutil.which("redis-server") is None:
        pytest.fail(
            "no Redis found: set REDIS_URL, run one on 127.0.0.1:6379, or put redis-server on PATH "
            "(e.g. apt-get install redis-server)"
        )
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def redis_url(redis_base_url: str) -> str:
    """A URL whose namespace is unique to the test, so tests never see each other's keys."""
    separator = "&" if "?" in redis_base_url else "?"
    return f"{redis_base_url}{separator}namespace=test-{uuid.uuid4().hex}"
