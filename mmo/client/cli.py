"""
``mmo-client``: a small player for humans and scripts.

Commands come from the terminal (through ``twisted.internet.stdio``) or from
``--script FILE``; they run one after another, so ``wait 2`` in a script
really pauses the commands after it.  The end of the input is ``quit``.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from twisted.python.failure import Failure

from ..options import parse_or_exit
from ..wire import messages as m
from .base import CLOSED
from .commands import HELP, Command, CommandError, LinePrinter, at, parse_command
from .follow import come_back, may_come_back
from .protocol import GameClient, LoginFailed, connect


class Options(usage.Options):
    synopsis = "--name NAME [--host HOST] [--port PORT] [--password PW] [--script FILE]"
    longdesc = ("Log in to an mmo node as NAME and play from the terminal or a "
                "script. Type 'help' for the commands.")
    optParameters = [
        ["host", "h", "127.0.0.1", "The node's address."],
        ["port", "p", 4000, "The node's TCP port.", int],
        ["name", "n", None, "Your player name."],
        ["password", None, "secret", "Your password (an unknown name is registered "
         "with it where the node allows)."],
        ["script", "s", None, "Run the commands in FILE (one a line), then quit."],
        ["timeout", None, 10.0, "Seconds to wait for the connection and login.", float],
        ["resume-window", None, 60.0, "After a Redirect or a dropped connection, come back "
         "with the resume token for up to this many seconds (0: do not).", float],
    ]
    optFlags = [["moves", None, "Also print every move of the entities you see."]]

    def postOptions(self) -> None:
        if not self["name"]:
            raise usage.UsageError("--name is required")
        if not 0 < self["port"] < 65536:
            raise usage.UsageError("--port must be 1 to 65535")


class CommandRunner:
    """Runs commands on a :class:`GameClient` one at a time, in order."""

    def __init__(self, client: GameClient, clock: Any, write: Callable[[str], None]) -> None:
        self.client = client
        self.clock = clock
        self.write = write
        self.queue: deque[str] = deque()
        self.busy = False
        self.finished: Deferred = Deferred()

    def feed(self, line: str) -> None:
        self.queue.append(line)
        self._next()

    def end_of_input(self) -> None:
        self.feed("quit")

    def _next(self) -> None:
        while self.queue and not self.busy and not self.finished.called:
            line = self.queue.popleft()
            try:
                cmd = parse_command(line)
            except CommandError as e:
                self.write(f"? {e}")
                continue
            if cmd is not None:
                self.run(cmd)

    def _resume(self, _: Any = None) -> None:
        self.busy = False
        self._next()

    def run(self, cmd: Command) -> None:
        c = self.client
        if c.state == CLOSED and cmd.name != "quit":
            self.write("? not connected")
            return
        name, args = cmd.name, cmd.args
        if name == "move":
            c.move(*args)
        elif name == "say":
            c.say(args[0])
        elif name == "zone":
            c.chat(m.Channel.ZONE, args[0])
        elif name == "shout":
            c.chat(m.Channel.GLOBAL, args[0])
        elif name == "whisper":
            c.whisper(*args)
        elif name == "goto":
            c.change_zone(args[0])
        elif name == "who":
            self._wait_for(c.who())
        elif name == "ping":
            d = c.measure_rtt()
            d.addCallback(lambda rtt: self.write(f"* ping: {rtt * 1000:.1f} ms"))
            self._wait_for(d)
        elif name == "where":
            self.write(f"* you are in zone {c.zone} at {at(c.x, c.y)}; you see "
                       f"{len(c.entities)}: " + ", ".join(
                           sorted(e.name for e in c.entities.values())))
        elif name == "wait":
            pause: Deferred = Deferred()
            self.clock.callLater(args[0], pause.callback, None)
            self._wait_for(pause)
        elif name == "help":
            self.write(HELP)
        elif name == "quit":
            self.queue.clear()
            c.close()
            if not self.finished.called:
                self.finished.callback(None)

    def _wait_for(self, d: Deferred) -> None:
        # Later commands wait (bounded: a closed connection fails the request).
        self.busy = True
        d.addErrback(lambda f: self.write(f"? {f.getErrorMessage()}"))
        d.addBoth(self._resume)


class StdinLines(LineReceiver):
    """Feeds the lines typed on stdin to a :class:`CommandRunner`."""

    delimiter = b"\n"

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def lineReceived(self, line: bytes) -> None:
        self.runner.feed(line.decode("utf-8", "replace").rstrip("\r"))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.runner.end_of_input()


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(reactor: Any, config: Options, write: Callable[[str], None] = _write) -> Deferred:
    """Connect, run the commands, and fire with the exit code."""
    printer = LinePrinter(write, config["moves"])
    d = connect(reactor, config["host"], config["port"], config["name"],
                config["password"], printer, timeout=config["timeout"])
    timer = reactor.callLater(config["timeout"], d.cancel)

    def playing(client: GameClient) -> Deferred:
        if timer.active():
            timer.cancel()
        runner = CommandRunner(client, reactor, write)
        if config["script"]:
            try:
                with open(config["script"], encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except OSError as e:
                write(f"! cannot read script {config['script']}: {e.strerror}")
                client.close()
                return client.when_closed().addCallback(lambda _: 1)
            for line in lines:
                runner.feed(line)
            runner.end_of_input()
        else:
            from twisted.internet import stdio

            stdio.StandardIO(StdinLines(runner), reactor=reactor)
        # After quit, give the server a bounded moment to close its side.
        runner.finished.addCallback(
            lambda _: reactor.callLater(2.0, runner.client.close, True))
        return _until_closed(reactor, config, runner, printer, write)

    def failed(f: Failure) -> int:
        if timer.active():
            timer.cancel()
        if f.check(LoginFailed):
            write(f"! login failed: {f.value}")
        else:
            write(f"! cannot connect to {config['host']}:{config['port']}: "
                  f"{f.getErrorMessage()}")
        return 1

    return d.addCallbacks(playing, failed)


def _until_closed(reactor: Any, config: Options, runner: CommandRunner,
                  listener: LinePrinter, write: Callable[[str], None]) -> Deferred:
    """Fire with the exit code once the player is gone for good."""
    client = runner.client

    def ended(reason: str) -> Any:
        window = config["resume-window"]
        if window <= 0 or runner.finished.called or not may_come_back(client):
            return 0 if reason == "closed_by_client" else 1
        r = client.redirect
        write(f"* {'sent to ' + r.host + ':' + str(r.port) if r else reason}: "
              "coming back with the resume token")
        d = come_back(reactor, client, config["host"], config["port"], listener, window,
                      config["timeout"])

        def back(new: GameClient) -> Deferred:
            runner.client = new
            write(f"* back in the world on node {new.node_id}")
            runner._next()
            return _until_closed(reactor, config, runner, listener, write)

        def lost(f: Failure) -> int:
            write(f"! could not come back: {f.getErrorMessage()}")
            return 1

        return d.addCallbacks(back, lost)

    return client.when_closed().addCallback(ended)


def main(argv: list[str] | None = None) -> None:
    config = parse_or_exit(Options, sys.argv[1:] if argv is None else argv, "mmo-client")
    from twisted.internet import task

    def _main(reactor: Any) -> Deferred:
        return run(reactor, config).addCallback(_exit_code)

    task.react(_main)


def _exit_code(code: int) -> None:
    if code:
        raise SystemExit(code)

