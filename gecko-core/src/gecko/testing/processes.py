"""Real servers for tests: a subprocess on a free loopback port, started, awaited and stopped.

Plugin tests talk to real servers (a model server, a vector database, an MCP server) started by the
test itself. `ServerProcess` holds the one way to do it: pick a free port, start the command with its
output in a log file, wait until a readiness check passes (failing with the log's tail when the
process dies or the deadline passes), and stop it (terminate, then kill) or kill it as a crash would.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

__all__ = ("ServerProcess", "free_port", "port_accepts", "refused_port")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def refused_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 kept bound and never listening inside the block: connecting is refused.

    Unlike a port from `free_port`, no other process can take it and answer meanwhile.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to `host:port` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ServerProcess:
    """A server subprocess for a test; use as a context manager or call `start`/`stop`.

    Example:
        ```python
        port = free_port()
        with ServerProcess([sys.executable, "server.py", str(port)], log=tmp_path / "server.log",
                           ready=lambda: port_accepts(port)) as server:
            ...
        ```
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        log: Path,
        ready: Callable[[], bool],
        startup_seconds: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        """Describe the server.

        Args:
            command: The program and its arguments.
            log: File receiving the server's standard output and error.
            ready: Returns True once the server answers.
            startup_seconds: How long `start` waits for `ready`.
            env: The server's whole environment; the test's own when None.
        """
        self.command = list(command)
        self.log = log
        self.ready = ready
        self.startup_seconds = startup_seconds
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running server's process id."""
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def start(self) -> None:
        """Start the server and wait until it is ready.

        Raises:
            RuntimeError: It exited or did not become ready in time (the message ends with its log).
        """
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(self.command, stdout=output, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.startup_seconds
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.command[0]} was not ready within {self.startup_seconds:g} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Terminate the server (kill it after 10 s) and wait for it to exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL, as a crash would) and wait for it to exit."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines the server printed."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
