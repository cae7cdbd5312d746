"""The real ``twistd -n mmo`` over real sockets on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import time

from support import TWISTD, WireClient, free_port, self_signed, wait_until
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins

from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder
from mmo.wire.messages import ErrorCode


def test_plugins_are_found():
    names = {p.tapname for p in getPlugins(IServiceMaker)}
    assert {"mmo", "mmo-loadgen"} <= names


def test_help_lists_options_with_defaults():
    out = subprocess.run([TWISTD, "mmo", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for flag in ("--tcp", "--listen", "--config", "--tick-hz", "--mgroup", "--mport",
                 "--iface", "--data-dir", "--node-id", "--max-frame", "--idle-timeout"):
        assert flag in out
    assert "(default: 4000)" in out


def test_bad_config_is_a_clear_error_not_a_traceback(tmp_path):
    bad = subprocess.run([TWISTD, "-n", "mmo", "--tick-hz", "0"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode != 0
    assert "--tick-hz" in bad.stderr + bad.stdout and "Traceback" not in bad.stderr
    conf = tmp_path / "mmo.toml"
    conf.write_text('tick_hz = 20\nbogus_key = 1\n')
    bad = subprocess.run([TWISTD, "-n", "mmo", "--config", str(conf)], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode != 0
    assert "unknown key 'bogus_key'" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "mmo", "--listen", f"tcp:{port}:interface=127.0.0.1"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode != 0
    assert f"cannot listen on tcp:{port}" in run.stderr + run.stdout
    assert "Traceback" not in run.stderr


def test_config_file_and_flags(start_node, tmp_path):
    conf = tmp_path / "mmo.toml"
    conf.write_text('tick_hz = 20\nzone = ["town:300x300"]\nnode_id = "from-file"\n')
    node = start_node("--config", str(conf), "--node-id", "from-flag")
    c = WireClient(node.port)
    c.send(m.Hello())
    assert c.expect(m.Welcome).node_id == "from-flag"
    c.send(m.Login("alice", "pw"))
    ew = c.expect(m.EnterWorld)
    assert (ew.zone, ew.tick_hz) == ("town", 20)


def test_two_players_see_each_other_enter_move_and_leave(start_node):
    node = start_node("--max-speed", "1000000")
    alice = WireClient(node.port)
    a = alice.login("alice")
    bob = WireClient(node.port)
    b = bob.login("bob")
    alice.expect(m.Enter, lambda msg: any(e.entity_id == b.entity_id for e in msg.entities))
    bob.expect(m.Enter, lambda msg: any(e.entity_id == a.entity_id for e in msg.entities))
    bob.send(m.Move(1, b.x + 10, b.y))
    alice.expect(m.Moves, lambda msg: any(
        i == b.entity_id and abs(x - (b.x + 10)) < 0.01 for i, x, _ in msg.moves))
    # Bob walks out of alice's area: she gets a leave.
    bob.send(m.Move(2, 1900, 1900))
    alice.expect(m.Leave, lambda msg: b.entity_id in msg.entity_ids)
    # Carol logs in far away (in another zone) and is never seen by alice.
    carol = WireClient(node.port)
    carol.login("carol")
    carol.send(m.ChangeZone("arena"))
    carol.expect(m.EnterWorld)
    bob.send(m.Move(3, a.x, a.y))
    alice.expect(m.Enter, lambda msg: any(e.entity_id == b.entity_id for e in msg.entities))
    bob.send(m.Bye())
    alice.expect(m.Leave, lambda msg: b.entity_id in msg.entity_ids)
    seen = {e.name for msg in alice.drain(0.3) if isinstance(msg, m.Enter) for e in msg.entities}
    assert "carol" not in seen


def test_too_fast_move_is_corrected(start_node):
    node = start_node()
    c = WireClient(node.port)
    ew = c.login("speedy")
    c.send(m.Move(9, ew.x + 400, ew.y))
    corr = c.expect(m.Correction)
    assert corr.seq == 9 and corr.reason == m.CorrectionReason.TOO_FAST
    assert (corr.x, corr.y) == (ew.x, ew.y)


def test_abuse_is_refused_while_a_player_keeps_getting_updates(start_node):
    node = start_node("--login-timeout", "1", "--max-speed", "100")
    watcher = WireClient(node.port)
    watcher.login("watcher")
    mover = WireClient(node.port)
    me = mover.login("mover")

    # The abusers: a 10 MB frame, garbage, a silent connection, 200 idle ones.
    big = socket.create_connection(("127.0.0.1", node.port))
    big.sendall(struct.pack(">IB", 10_000_000, m.Chat.TYPE))
    try:
        big.sendall(b"x" * 65536)
    except OSError:
        pass  # the server may already have refused it: that is the point
    junk = WireClient(node.port)
    junk.send_raw(b"\xde\xad\xbe\xef" * 64)
    silent = WireClient(node.port)
    idle = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(200)]

    watcher.drain(0.2)
    ages = []
    ticks = []
    x = me.x
    started = time.monotonic()
    seq = 0
    while time.monotonic() - started < 3.0:
        seq += 1
        x += 3 if seq % 40 < 20 else -3
        mover.send(m.Move(seq, x, me.y))
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            watcher._read(deadline - time.monotonic())
            for msg in watcher.drain(0):
                if isinstance(msg, m.Tick):
                    ages.append(time.time() - msg.server_time)
                    ticks.append(msg.tick)
        for msg in mover.drain(0):
            assert not isinstance(msg, (m.Correction, m.Error)), msg
    # At 10 Hz, about 30 updates in 3 s, each young.
    assert len(ages) >= 20, (seq, ticks)
    assert max(ages) < 0.25, sorted(ages)[-5:]

    assert [e.code for e in junk.wait_closed() if isinstance(e, m.Error)] in (
        [ErrorCode.BAD_FRAME], [ErrorCode.FRAME_TOO_LARGE])
    silent_msgs = silent.wait_closed()
    assert [e.code for e in silent_msgs if isinstance(e, m.Error)] == [ErrorCode.LOGIN_TIMEOUT]
    big_reply = WireClient.__new__(WireClient)
    big_reply.sock, big_reply.inbox, big_reply.closed = big, [], False
    from mmo.wire.frames import FrameDecoder
    big_reply.decoder = FrameDecoder.for_client()
    assert ErrorCode.FRAME_TOO_LARGE in [
        e.code for e in big_reply.wait_closed() if isinstance(e, m.Error)]
    # Of 200 idle connections, the per-IP limit refused some and the login
    # timeout closed the rest: every one is closed by the server.
    for s in idle:
        s.settimeout(5)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        code = struct.unpack(">H", data[5:7])[0]
        assert code in (ErrorCode.TOO_MANY_CONNECTIONS, ErrorCode.LOGIN_TIMEOUT)
        s.close()
    assert "refused 127.0.0.1" in node.output


def test_sigterm_notifies_every_client_and_exits_zero(start_node):
    node = start_node()
    clients = [WireClient(node.port) for _ in range(5)]
    for i, c in enumerate(clients):
        c.login(f"p{i}")
    node.signal(signal.SIGTERM)
    for c in clients:
        notice = c.expect(m.Notice)
        assert notice.kind == m.NoticeKind.SHUTDOWN
        c.wait_closed()
    assert node.wait(15) == 0
    wait_until(lambda: "stopped" in node.output, what="stop log line")


def test_players_over_tls(start_node, tmp_path):
    import ssl

    key, cert = self_signed(tmp_path)
    port = free_port()
    start_node("--listen", f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}")
    ctx = ssl.create_default_context(cafile=str(cert))

    def tls_client() -> WireClient:
        client = WireClient.__new__(WireClient)
        client.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                      server_hostname="127.0.0.1")
        client.decoder, client.inbox, client.closed = FrameDecoder.for_client(), [], False
        return client

    alice, bob = tls_client(), tls_client()
    a = alice.login("alice")
    b = bob.login("bob")
    alice.expect(m.Enter, lambda msg: any(e.entity_id == b.entity_id for e in msg.entities))
    # A move right after login may be too fast for the speed budget (it
    # starts empty): then the node corrects it, and bob tries again.
    for seq in range(1, 6):
        bob.send(m.Move(seq, b.x + seq, b.y))
        answer = bob.expect((m.Moves, m.Correction), lambda msg: isinstance(msg, m.Correction)
                            or any(i == b.entity_id for i, _, _ in msg.moves))
        if isinstance(answer, m.Moves):
            break
        # The budget refills with the node's clock alone and no frame says
        # when (no Tick comes to an area where nothing moved): time passes.
        bob.drain(0.2)
    alice.expect(m.Moves, lambda msg: any(i == b.entity_id for i, _, _ in msg.moves))
    assert a.zone == "world"
