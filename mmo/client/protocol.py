"""
The client library: :class:`GameClient` decodes everything the server sends,
keeps the entities the player sees, and tells an :class:`IClientListener`.

Requests that have an answer return Deferreds (:meth:`GameClient.who`,
:meth:`GameClient.measure_rtt`), and :func:`connect` fires once the player
is in the world.  The library is Twisted-native; asyncio code can use it on
Twisted's ``asyncioreactor`` and await any of these Deferreds with
``Deferred.asFuture(loop)``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTime
from zope.interface import Interface, implementer

from ..wire import messages as m
from .base import CLOSED, PLAYING, ClientConnection, error_name


class LoginFailed(Exception):
    """The server refused the login, or the connection ended before it."""

    def __init__(self, reason: str, text: str = "", redirect: m.Redirect | None = None) -> None:
        super().__init__(f"{reason}: {text}" if text else reason)
        self.reason = reason
        self.text = text
        #: The ``Redirect`` that ended the login, if one did.
        self.redirect = redirect


@dataclass
class SeenEntity:
    """An entity in the player's area of interest."""

    entity_id: int
    name: str
    kind: int
    x: float
    y: float


class IClientListener(Interface):
    """What a :class:`GameClient` tells as the player sees things happen."""

    def entered_world(msg: m.EnterWorld) -> None:
        """The player is in a zone (after login and after each zone change)."""

    def entity_entered(entity: SeenEntity) -> None:
        """An entity came into view."""

    def entity_left(entity: SeenEntity) -> None:
        """An entity went out of view."""

    def entities_moved(entities: list[SeenEntity]) -> None:
        """Entities in view moved this tick."""

    def chat_received(channel: int, sender: str, text: str) -> None:
        """A chat line reached the player."""

    def corrected(msg: m.Correction) -> None:
        """The server refused a move and put the player back."""

    def error_received(code: int, text: str) -> None:
        """The server refused a request."""

    def notice_received(kind: int, text: str) -> None:
        """A notice from the server, such as an announced shutdown."""

    def who_received(msg: m.WhoReply) -> None:
        """The answer to a ``who`` request."""

    def closed(reason: str) -> None:
        """The connection ended; ``reason`` names why."""


@implementer(IClientListener)
class ClientListener:
    """An :class:`IClientListener` that ignores everything; subclass it."""

    def entered_world(self, msg: m.EnterWorld) -> None:
        pass

    def entity_entered(self, entity: SeenEntity) -> None:
        pass

    def entity_left(self, entity: SeenEntity) -> None:
        pass

    def entities_moved(self, entities: list[SeenEntity]) -> None:
        pass

    def chat_received(self, channel: int, sender: str, text: str) -> None:
        pass

    def corrected(self, msg: m.Correction) -> None:
        pass

    def error_received(self, code: int, text: str) -> None:
        pass

    def notice_received(self, kind: int, text: str) -> None:
        pass

    def who_received(self, msg: m.WhoReply) -> None:
        pass

    def closed(self, reason: str) -> None:
        pass


class GameClient(ClientConnection):
    """A full client: every frame decoded, the visible entities kept."""

    def __init__(
        self,
        name: str,
        password: str,
        clock: IReactorTime,
        listener: IClientListener | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(name, password, clock, token)
        self.listener: IClientListener = listener or ClientListener()
        self.entities: dict[int, SeenEntity] = {}
        self.tick = 0
        self.server_time = 0.0
        self._in_world: Deferred | None = Deferred()
        self._closed_waiters: list[Deferred] = []
        self._who: deque[Deferred] = deque()
        self._pings: dict[int, Deferred] = {}
        #: Entities known before a Resync, until the Enter frames after it.
        self._stale: dict[int, SeenEntity] = {}

    # -- Deferreds -------------------------------------------------------------

    def when_in_world(self) -> Deferred:
        """Fire with this client once it is in the world, or fail with :class:`LoginFailed`."""
        if self._in_world is None:
            return succeed(self)
        return self._in_world

    def when_closed(self) -> Deferred:
        """Fire with the reason name when the connection has ended."""
        if self.state == CLOSED:
            return succeed(self.reason)
        d: Deferred = Deferred()
        self._closed_waiters.append(d)
        return d

    def who(self) -> Deferred:
        """Ask who is online; fire with the :class:`WhoReply`."""
        d: Deferred = Deferred()
        self._who.append(d)
        self.request_who()
        return d

    def measure_rtt(self) -> Deferred:
        """Send a ping; fire with the round-trip time in seconds."""
        d: Deferred = Deferred()
        self._pings[self.ping()] = d
        return d

    # -- frames ----------------------------------------------------------------

    def frame_received(self, type_: int, body: bytes, now: float) -> None:
        msg = self.decode(type_, body)
        if msg is None:
            return
        handler = _HANDLERS.get(type(msg))
        if handler is not None:
            handler(self, msg, now)

    def _on_enter_world(self, msg: m.EnterWorld, now: float) -> None:
        self.entered_world(msg, now)
        # A new zone: everything seen before is out of view.
        for seen in list(self.entities.values()) + list(self._stale.values()):
            self.listener.entity_left(seen)
        self.entities.clear()
        self._stale.clear()
        d, self._in_world = self._in_world, None
        self.listener.entered_world(msg)
        if d is not None:
            d.callback(self)

    def _on_tick(self, msg: m.Tick, now: float) -> None:
        if self._stale:
            # What the resync did not send again has gone out of view.
            stale, self._stale = self._stale, {}
            for seen in stale.values():
                self.listener.entity_left(seen)
        self.tick = msg.tick
        self.server_time = msg.server_time

    def _on_enter(self, msg: m.Enter, now: float) -> None:
        for info in msg.entities:
            if info.entity_id == self.entity_id:
                continue
            seen = SeenEntity(info.entity_id, info.name, info.kind, info.x, info.y)
            self.entities[info.entity_id] = seen
            if self._stale.pop(info.entity_id, None) is None:
                self.listener.entity_entered(seen)

    def _on_leave(self, msg: m.Leave, now: float) -> None:
        for eid in msg.entity_ids:
            seen = self.entities.pop(eid, None)
            if seen is not None:
                self.listener.entity_left(seen)

    def _on_moves(self, msg: m.Moves, now: float) -> None:
        moved = []
        for eid, x, y in msg.moves:
            seen = self.entities.get(eid)
            if seen is not None:
                seen.x, seen.y = x, y
                moved.append(seen)
        if moved:
            self.listener.entities_moved(moved)

    def _on_resync(self, msg: m.Resync, now: float) -> None:
        # The server sends everything in view again; only real changes are told.
        self._stale.update(self.entities)
        self.entities.clear()

    def _on_correction(self, msg: m.Correction, now: float) -> None:
        self.x, self.y = msg.x, msg.y
        self.listener.corrected(msg)

    def _on_pong(self, msg: m.Pong, now: float) -> None:
        d = self._pings.pop(msg.token, None)
        if d is not None:
            d.callback(now - msg.client_time)

    def _on_chat(self, msg: m.ChatMessage, now: float) -> None:
        self.listener.chat_received(msg.channel, msg.sender, msg.text)

    def _on_who(self, msg: m.WhoReply, now: float) -> None:
        self.listener.who_received(msg)
        if self._who:
            self._who.popleft().callback(msg)

    def _on_notice(self, msg: m.Notice, now: float) -> None:
        self.notice_received(msg.kind, msg.text)
        self.listener.notice_received(msg.kind, msg.text)

    def _on_ticket(self, msg: m.Ticket, now: float) -> None:
        self.token = msg.token

    def _on_redirect(self, msg: m.Redirect, now: float) -> None:
        self.redirected(msg)

    def _on_error(self, msg: m.Error, now: float) -> None:
        self.error_received(msg.code, msg.text)
        self.listener.error_received(msg.code, msg.text)
        if self._in_world is not None and self.state != PLAYING:
            d, self._in_world = self._in_world, None
            d.errback(LoginFailed(error_name(msg.code), msg.text))

    # -- the end -----------------------------------------------------------------

    def closed(self, reason: str) -> None:
        d, self._in_world = self._in_world, None
        if d is not None:
            text = self.last_error[1] if self.last_error else "connection closed before login"
            d.errback(LoginFailed(reason, text, self.redirect))
        pending = list(self._who) + list(self._pings.values())
        self._who.clear()
        self._pings.clear()
        for waiter in pending:
            waiter.errback(ConnectionError(reason))
        self.listener.closed(reason)
        waiters, self._closed_waiters = self._closed_waiters, []
        for w in waiters:
            w.callback(reason)


_HANDLERS: dict[type, Any] = {
    m.EnterWorld: GameClient._on_enter_world,
    m.Tick: GameClient._on_tick,
    m.Enter: GameClient._on_enter,
    m.Leave: GameClient._on_leave,
    m.Moves: GameClient._on_moves,
    m.Resync: GameClient._on_resync,
    m.Correction: GameClient._on_correction,
    m.Pong: GameClient._on_pong,
    m.ChatMessage: GameClient._on_chat,
    m.WhoReply: GameClient._on_who,
    m.Notice: GameClient._on_notice,
    m.Error: GameClient._on_error,
    m.Ticket: GameClient._on_ticket,
    m.Redirect: GameClient._on_redirect,
}


#: Redirects followed at most in a row (a cluster that disagrees on owners
#: must not bounce a client forever).
MAX_HOPS = 4


def connect(
    reactor: Any,
    host: str,
    port: int,
    name: str,
    password: str,
    listener: IClientListener | None = None,
    timeout: float = 10.0,
    token: str | None = None,
    follow: bool = True,
) -> Deferred:
    """
    Connect and log in (with ``token``, when given, instead of the
    password); fire with the :class:`GameClient` once the player is in the
    world, or fail with :class:`LoginFailed` (or the connect error).  A
    ``Redirect`` is followed (unless ``follow`` is false): the client
    connects where it says with the token it carries.
    """
    return _connect(reactor, host, port, name, password, listener, timeout, token,
                    0 if follow else MAX_HOPS)


def _connect(reactor: Any, host: str, port: int, name: str, password: str,
             listener: IClientListener | None, timeout: float, token: str | None,
             hops: int) -> Deferred:
    client = GameClient(name, password, reactor, listener, token)
    client.door = (host, port)
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    d = connectProtocol(endpoint, client)
    d.addCallback(lambda _: client.when_in_world())

    def follow(f: Any) -> Any:
        r = client.redirect
        if not f.check(LoginFailed) or r is None or hops >= MAX_HOPS:
            return f
        return _connect(reactor, r.host, r.port, name, password, listener, timeout,
                        r.token, hops + 1)

    d.addErrback(follow)
    return d
