"""
Helpers for integration tests: real ``twistd`` processes and real sockets on
127.0.0.1, every wait bounded by a deadline (no sleeping to wait).
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder

BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_args() -> list[str]:
    """A multicast group and port of this test's own (tests run side by side)."""
    group = f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}"
    return ["--mgroup", group, "--mport", str(free_port(socket.SOCK_DGRAM))]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0,
               interval: float = 0.02, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def spin(reactor: Any, predicate: Callable[[], Any], timeout: float = 5.0,
         what: str = "a datagram") -> None:
    """Run ``reactor`` until ``predicate()`` is true, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        reactor.iterate(0.02)


class Inbox:
    """A ``receive`` callback that keeps what it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []

    def __call__(self, data: bytes, source: Any) -> None:
        self.got.append((data, source))

    @property
    def data(self) -> list[bytes]:
        return [d for d, _s in self.got]


class Process:
    """A child process whose output goes to a log file we can poll."""

    def __init__(self, argv: list[str], cwd: Path, name: str,
                 env: dict[str, str] | None = None, unset: Iterable[str] = ()) -> None:
        self.log_path = cwd / f"{name}.log"
        self.argv = argv
        self._log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        for variable in unset:
            full_env.pop(variable, None)
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=full_env,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        rx = re.compile(pattern)

        def found() -> re.Match[str] | None:
            match = rx.search(self.output)
            if match is None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.argv[0]} exited with {self.proc.returncode} before "
                    f"printing {pattern!r}:\n{self.output[-4000:]}")
            return match

        try:
            return wait_until(found, timeout, what=pattern)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- log ---\n{self.output[-4000:]}") from None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; only this process, by its pid."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class NodeProcess(Process):
    """``twistd -n mmo`` on an ephemeral port of 127.0.0.1."""

    def __init__(self, workdir: Path, *args: str, name: str = "node",
                 env: dict[str, str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [TWISTD, "-n", "--pidfile=", "mmo",
                "--listen", "tcp:0:interface=127.0.0.1",
                "--data-dir", str(workdir / "data"),
                "--password-iterations", "1000", *args]
        if "--mport" not in args:
            argv += cluster_args()
        if "--placement" not in args:
            # Players stay where they log in unless a test is about regions.
            argv += ["--placement", "connection"]
        if "--http" not in args:
            # Nodes run side by side: each serves /metrics on a port of its own.
            argv += ["--http", "tcp:0:interface=127.0.0.1"]
        super().__init__(argv, workdir, name, env)
        match = self.wait_for(r"listening for players on \S+ \(IPv4Address\(type='TCP', "
                              r"host='[\d.]+', port=(\d+)\)\)")
        self.port = int(match.group(1))
        #: The first ``--websocket`` port, if any.
        self.websocket_port: int | None = None
        if "--websocket" in args:
            ws = self.wait_for(r"listening for WebSocket players on \S+ \(IPv4Address\("
                               r"type='TCP', host='[\d.]+', port=(\d+)\)\)")
            self.websocket_port = int(ws.group(1))
        #: The port of /metrics and /healthz, or None with ``--http none``.
        self.http_port: int | None = None
        if "--http" not in args or args[args.index("--http") + 1] != "none":
            http = self.wait_for(r"serving metrics and health on \S+ \(IPv4Address\("
                                 r"type='TCP', host='[\d.]+', port=(\d+)\)\)")
            self.http_port = int(http.group(1))


class WireClient:
    """A blocking test client speaking the wire protocol over a real socket."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.decoder = FrameDecoder.for_client()
        self.inbox: list[m.Message] = []
        self.closed = False

    def send(self, *msgs: m.Message) -> None:
        self.sock.sendall(b"".join(msg.encode() for msg in msgs))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def login(self, name: str, password: str = "secret") -> m.EnterWorld:
        self.send(m.Hello(m.PROTOCOL_VERSION, "test"), m.Login(name, password))
        return self.expect(m.EnterWorld)

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return
        self.inbox.extend(self.decoder.feed(data))

    def expect(self, kind: type[m.Message] | tuple[type[m.Message], ...],
               where: Callable[[Any], bool] = lambda msg: True,
               timeout: float = 5.0) -> Any:
        """The first received message of ``kind`` matching ``where``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, msg in enumerate(self.inbox):
                if isinstance(msg, kind) and where(msg):
                    del self.inbox[: i + 1]
                    return msg
            if self.closed:
                raise AssertionError(f"connection closed while waiting for {kind}; got {self.inbox}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} within {timeout}s; got {self.inbox[-20:]}")
            self._read(min(left, 0.2))

    def drain(self, seconds: float = 0.0) -> list[m.Message]:
        """Everything that arrives within ``seconds`` (a bounded read)."""
        deadline = time.monotonic() + seconds
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._read(min(left, 0.2))
        out, self.inbox = self.inbox, []
        return out

    def wait_closed(self, timeout: float = 10.0) -> list[m.Message]:
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {timeout}s")
            self._read(min(left, 0.2))
        return self.inbox

    def close(self) -> None:
        self.sock.close()


def entity_ids(messages: Iterable[m.Message], kind: type[m.Message]) -> set[int]:
    ids: set[int] = set()
    for msg in messages:
        if isinstance(msg, m.Enter) and kind is m.Enter:
            ids.update(e.entity_id for e in msg.entities)
        elif isinstance(msg, m.Leave) and kind is m.Leave:
            ids.update(msg.entity_ids)
    return ids


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for 127.0.0.1, written in ``tmp``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = tmp / "key.pem", tmp / "cert.pem"
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path
