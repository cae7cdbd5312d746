"""
Real ``redis-server`` processes for the tests, on free ports of 127.0.0.1
only, in temporary directories; each stopped by its own pid at the end.

Tests that use them are skipped, with the reason, where ``redis-server`` is
not installed (Debian: ``apt-get install redis-server``) or txredisapi is
missing (``pip install 'mmo[redis]'``).  :class:`RespClient` is a small
blocking client speaking the Redis protocol over a plain socket, for tests
that play a stranger or watch a channel.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import free_port, wait_until


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    try:
        import txredisapi  # noqa: F401
    except ImportError:
        pytest.skip("the Redis transport needs txredisapi (pip install 'mmo[redis]')")
    return path


class RespClient:
    """A blocking Redis client on a plain socket: commands in, replies out."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0,
                 tls: Any = None) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        self.sock = tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, *args: bytes | str | int) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            data = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))

    def command(self, *args: bytes | str | int) -> Any:
        self.send(*args)
        return self.reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("Redis closed the connection")
        self.buffer += data

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buffer) < n + 2:
                self._fill()
            data, self.buffer = self.buffer[:n], self.buffer[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError(f"cannot read the reply {line!r}")

    def messages(self, seconds: float) -> list[tuple[bytes, bytes]]:
        """The ``(channel, data)`` of the messages a subscribed client gets within ``seconds``."""
        out = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and b"\r\n" not in self.buffer:
                return out
            self.sock.settimeout(max(left, 0.001))
            try:
                reply = self.reply()
            except TimeoutError:
                return out
            finally:
                self.sock.settimeout(5.0)
            if isinstance(reply, list) and reply and reply[0] == b"message":
                out.append((reply[1], reply[2]))


class RedisServer:
    """One ``redis-server`` on 127.0.0.1: started, stopped and started again on its port."""

    def __init__(self, workdir: Path, *options: str, tls: Any = None) -> None:
        self.binary = redis_binary()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.options = list(options)
        #: An ``ssl.SSLContext`` to check a server whose port is TLS (its
        #: options then say where its certificate is).
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None
        self.starts += 1
        log = open(self.workdir / f"redis-{self.starts}.log", "wb")
        ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls else [
            "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [self.binary, *ports, "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             "--protected-mode", "yes", *self.options],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        wait_until(self._answers, timeout, interval=0.01, what="redis-server to answer")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.workdir / f"redis-{self.starts}.log").read_text(errors="replace")
            raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{log[-2000:]}")
        try:
            client = RespClient(self.port, timeout=1.0, tls=self.tls)
        except OSError:
            return False
        try:
            return client.command("PING") == "PONG"
        except RuntimeError:
            return True  # answering, if only to refuse (requirepass)
        except OSError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL if it lingers): this process only, by its pid."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # in case a test paused it
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP: it holds its connections and answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def client(self) -> RespClient:
        return RespClient(self.port, tls=self.tls)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the session's tests (each uses cluster names of its own)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_servers(tmp_path: Path) -> Iterator[Any]:
    """Start Redis servers of this test's own (to stop, restart, pause); all stopped at the end."""
    started: list[RedisServer] = []

    def start(*options: str, name: str = "redis", tls: Any = None) -> RedisServer:
        server = RedisServer(tmp_path / f"{name}-{len(started)}", *options, tls=tls)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
