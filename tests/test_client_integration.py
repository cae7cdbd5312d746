"""``mmo-client`` as a person or a script runs it, against a real ``twistd -n mmo``."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support import BIN, Process, WireClient, free_port, wait_until

from mmo.wire import messages as m

CLIENT = str(BIN / "mmo-client")


@contextmanager
def client_on_stdin(port: int, name: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """
    ``mmo-client`` playing ``name``, its commands written to its stdin, its
    output in ``log``: in the world when this yields, killed on the way out
    if it is still running.
    """
    with open(log, "wb") as out:
        proc = subprocess.Popen([CLIENT, "--port", str(port), "--name", name],
                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "you are in zone" in log.read_text(), timeout=15,
                       what=f"{name} in the world")
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_script_prints_arrival_and_chat(start_node, tmp_path):
    node = start_node()
    script = tmp_path / "alice.txt"
    script.write_text("# stay a while, then greet\nwait 4\nsay hello bob\nwho\nquit\n")
    alice = Process([CLIENT, "--port", str(node.port), "--name", "alice",
                     "--script", str(script)], tmp_path, "alice")
    try:
        alice.wait_for(r"\* you are in zone world")
        bob = WireClient(node.port)
        bob.login("bob")
        bob.expect(m.Enter, lambda msg: any(e.name == "alice" for e in msg.entities))
        bob.send(m.Chat(m.Channel.SAY, "hi alice"))
        alice.wait_for(r"\* bob enters at \(\d+\.\d, \d+\.\d\)")
        alice.wait_for(r"\[say\] bob: hi alice")
        # The script goes on after its wait: bob hears alice.
        heard = bob.expect(m.ChatMessage, lambda msg: msg.sender == "alice", timeout=10)
        assert heard.text == "hello bob"
        alice.wait_for(r"who: 2 player\(s\) online")
        code = alice.wait(15)
        bob.close()
    finally:
        alice.stop()
    assert code == 0, alice.output
    assert "* disconnected (closed_by_client)" in alice.output


def test_interactive_lines_on_stdin(start_node, tmp_path):
    node = start_node()
    log = tmp_path / "carol.log"
    with client_on_stdin(node.port, "carol", log) as proc:
        proc.stdin.write(b"goto arena\nwhisper nobody hi\nping\nflap\n")
        proc.stdin.flush()
        wait_until(lambda: "! error UNKNOWN_PLAYER" in log.read_text(), timeout=10,
                   what="the error line")
        proc.stdin.close()  # end of input is quit
        code = proc.wait(15)
    text = log.read_text()
    assert code == 0, text
    assert "* you are in zone arena" in text
    assert "* ping: " in text
    assert "? unknown command 'flap'" in text


def test_login_refused_exits_non_zero(start_node, tmp_path):
    node = start_node()
    first = WireClient(node.port)
    first.login("dave", "right")
    first.close()
    started = time.monotonic()
    out = subprocess.run([CLIENT, "--port", str(node.port), "--name", "dave",
                          "--password", "wrong", "--script", "/dev/null"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "! login failed: auth_failed" in out.stdout
    assert time.monotonic() - started < 30


def test_the_client_comes_back_by_itself_after_its_node_restarts(start_node, tmp_path):
    port = free_port()
    fixed = ("--listen", f"tcp:{port}:interface=127.0.0.1")
    node = start_node(*fixed)
    log = tmp_path / "dave.log"
    with client_on_stdin(port, "dave", log) as proc:
        node.signal(signal.SIGTERM)
        assert node.wait(20) == 0
        wait_until(lambda: "coming back with the resume token" in log.read_text(),
                   timeout=10, what="the client noticing")
        again = start_node(*fixed, name="node")
        wait_until(lambda: "back in the world" in log.read_text(), timeout=15,
                   what="dave back")
        proc.stdin.write(b"where\n")
        proc.stdin.close()
        code = proc.wait(15)
    text = log.read_text()
    assert code == 0, text
    assert text.count("* you are in zone world") >= 2, text
    assert "player dave joined" in again.output
