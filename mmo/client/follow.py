"""
Staying in the world: after a ``Redirect`` or a dropped connection, a
client comes back with its resume token, on its own.

:func:`come_back` reconnects a :class:`~mmo.client.protocol.GameClient`
whose connection ended: to the node a ``Redirect`` named, else to where it
was, retrying while the node restarts (connection refused) until its token
runs out.  The interactive client uses it; the load generator's bots do the
same in their own loop.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import deferLater

from .base import CLOSED
from .protocol import GameClient, IClientListener, LoginFailed, connect

#: Reasons a connection ended after which a client with a token comes back.
COME_BACK = frozenset({"redirected", "connection_lost", "server_shutdown"})
#: Seconds between attempts while the node does not answer.
RETRY = 0.5


def may_come_back(client: GameClient) -> bool:
    """Whether ``client``'s connection ended in a way a token answers."""
    return client.state == CLOSED and client.reason in COME_BACK and bool(client.token)


def come_back(reactor: Any, client: GameClient, host: str, port: int,
              listener: IClientListener | None, window: float,
              timeout: float = 10.0) -> Deferred:
    """
    Reconnect ``client``'s player with its token: fire with the new
    :class:`GameClient` once it is in the world, or fail (the token was
    refused, or no node answered within ``window`` seconds).

    It goes where a ``Redirect`` sent it, else to the node it was on, and
    takes turns with ``host``:``port`` (the node it first reached) while
    those do not answer: when a node dies, any other node takes its
    players back.
    """
    doors: list[tuple[str, int]] = []
    if client.redirect is not None:
        doors.append((client.redirect.host, client.redirect.port))
    elif client.door is not None:
        doors.append(client.door)
    if (host, port) not in doors:
        doors.append((host, port))
    if not client.token:
        return fail(LoginFailed("no_token", "no resume token to come back with"))
    deadline = reactor.seconds() + window
    state: dict[str, Any] = {"token": client.token, "turn": 0, "to": None}

    def attempt() -> Deferred:
        to = state["to"]
        if to is None:
            to = doors[state["turn"] % len(doors)]
            state["turn"] += 1
        state["to"] = None
        d = connect(reactor, to[0], to[1], client.name, client.password, listener,
                    timeout=timeout, token=state["token"], follow=False)
        d.addErrback(retry)
        return d

    def retry(f: Any) -> Any:
        if reactor.seconds() + RETRY >= deadline:
            return f
        if f.check(LoginFailed):
            r = f.value.redirect
            if r is not None:
                # Sent on, with a new token: go there at once.
                state["token"], state["to"] = r.token, (r.host, r.port)
                return attempt()
            if f.value.reason not in ("connection_lost", "server_shutdown"):
                return f  # refused: the token or the login is no good
        return deferLater(reactor, RETRY, attempt)

    return attempt()
