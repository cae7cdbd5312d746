"""
Coming back without a password: the node's side of resume tokens.

Every player in the world holds a fresh token (a ``Ticket`` frame after
``EnterWorld``, and a new one each third of the token's lifetime).  A
client whose connection dropped, whose node restarted or that was sent
elsewhere by a ``Redirect`` presents it in ``Resume`` to any node of the
cluster: a MAC check (:mod:`mmo.server.tokens`) instead of a password hash,
so a whole node's players come back in a moment.

The player continues from the freshest of what this node knows: its own
session still here, the position the cluster last told this node of (the
mirrors of another node's players), the state saved in the store, and the
position the token itself carries.

A token stays single-use without telling every node of every resume: a
``Redirect``'s token (made out to a node, its ``for_node``) is taken only
by that node while it is live (this node would send players there: it was
heard within two heartbeat intervals); another node answers it with a
``Redirect`` there, with the same token, unspent.  Once that node is gone,
any node takes it (a client whose new node died gets back in).  The node a
handoff's token is made out to tells nobody when it takes it: the old
owner already ended its session, and no other node takes it meanwhile.
Every other resume (a ``Ticket``'s token, after a drop or a node's death;
a login's ``Redirect``) is announced to every node (``Resumed``): the
token is spent everywhere, and a session of the player another node
still has is closed.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from zope.interface import implementer

from ..interfaces import IAccountStore, INumbers, ISession, LoginRefused, SentElsewhere
from ..wire import messages as m
from ..wire.messages import ErrorCode
from .tokens import Claims, TokenBook, TokenRefused


class Resumed:
    """An account for :meth:`Node._enter_world`: a name and its state."""

    def __init__(self, name: str, state: dict[str, Any], for_me: bool) -> None:
        self.name = name
        self.state = state
        #: A Redirect sent the player to this node: it stays here.
        self.for_me = for_me


def freshest(claims: Claims, lifetime: float, saved: dict[str, Any],
             saved_at: float | None, heard: tuple | None) -> tuple[dict[str, Any], str]:
    """
    The state to continue from, and where its position came from: ``saved``
    (the store's), with the position of whichever is newest of the store's
    save (at ``saved_at``), the cluster's last word (``heard``: seconds,
    zone, x, y) and the token's own.
    """
    state = dict(saved)
    best, source = (saved_at, "the store") if saved_at is not None and "x" in saved \
        else (-1.0, "nowhere")
    issued = claims.issued(lifetime)
    if issued > best:
        state.update(zone=claims.zone, x=claims.x, y=claims.y)
        best, source = issued, "its token"
    if heard is not None and heard[0] > best:
        state.update(zone=heard[1], x=heard[2], y=heard[3])
        source = "the cluster"
    return state, source


@implementer(INumbers)
class Resumes:
    """Tickets for the players of one node, and resumes with them."""

    log = Logger()

    def __init__(self, node: Any, book: TokenBook) -> None:
        self.node = node
        self.book = book
        self.refresh = book.lifetime / 3
        #: name -> when that player gets its next ticket.
        self.due: dict[str, float] = {}
        #: Resumes sent on to the live node their token is made out to.
        self.redirected = 0
        #: (due, name), soonest first: a sweep looks only at those due.  An
        #: entry whose time is no longer its name's in :attr:`due` (a newer
        #: ticket, a forgotten player) is dropped when it comes up.
        self._queue: list[tuple[float, str]] = []

    # -- tickets ---------------------------------------------------------------

    def issue(self, session: ISession, now: float) -> None:
        """Send ``session``'s player a fresh token."""
        e = session.entity
        if e is None or e.zone is None:
            return
        book = self.book
        session.send(m.Ticket(book.mint(session.name, e.zone.name, e.x, e.y),
                              int(book.lifetime)))
        self._schedule(session.name, now + self.refresh)

    def _schedule(self, name: str, when: float) -> None:
        self.due[name] = when
        queue = self._queue
        if len(queue) > 2 * len(self.due) + 64:
            # Mostly stale entries (players who came and went within a
            # refresh): rebuilt from the live ones, so it stays bounded.
            queue[:] = [(t, n) for n, t in self.due.items()]
            heapify(queue)
        else:
            heappush(queue, (when, name))

    def sweep(self, now: float) -> None:
        """A new ticket for every player whose last one is a third through its life."""
        sessions = self.node.sessions
        due = self.due
        queue = self._queue
        waiting: dict[str, float] = {}
        while queue and queue[0][0] <= now:
            when, name = heappop(queue)
            if due.get(name) != when:
                continue  # stale: renewed or forgotten since
            session = sessions.get(name)
            if session is None:
                del due[name]
                continue
            if session.live:
                self.issue(session, now)
            if due.get(name) == when:
                waiting[name] = when  # no ticket went out (not draining): next sweep
        for name, when in waiting.items():
            heappush(queue, (when, name))

    def forget(self, name: str) -> None:
        self.due.pop(name, None)

    # -- resumes ---------------------------------------------------------------

    def resume(self, session: ISession, token: str, store: IAccountStore) -> Deferred:
        """Check and spend ``token``; fire once the player is back in the world."""
        book = self.book
        try:
            claims = book.check(token)
        except TokenRefused as e:
            return fail(LoginRefused(ErrorCode.TOKEN_REFUSED, str(e)))
        cluster = self.node.cluster
        to = claims.for_node
        if to and to != self.node.node_id and cluster is not None:
            door = cluster.player_door(to)
            if door is not None:
                # Made out to a node that is live: only it takes the token
                # (which is what keeps it single-use with no announcement).
                self.redirected += 1
                return fail(SentElsewhere(m.Redirect(door[0], door[1], door[2], token)))
        book.use(claims)
        d = store.resume(claims.name)
        d.addCallback(self._resumed, claims, session)
        return d

    def _resumed(self, account: Any, claims: Claims, session: ISession) -> Any:
        cluster = self.node.cluster
        if cluster is None or claims.for_node == self.node.node_id:
            # Alone, or sent here by a Redirect: its token says where it is.
            return self._placed(None, account, claims, session)
        d = cluster.locate(claims.name)
        d.addCallback(self._placed, account, claims, session)
        return d

    def _placed(self, heard: tuple | None, account: Any, claims: Claims,
                session: ISession) -> None:
        cluster = self.node.cluster
        if cluster is not None and not self._handed_here(claims):
            # Now (after asking where it was): the token is spent everywhere,
            # and a session of the player another node still has is closed.
            cluster.resumed(claims.name, claims.nonce, claims.expires)
        state, source = freshest(claims, self.book.lifetime, account.state,
                                 getattr(account, "saved_at", None), heard)
        self.log.info("player {name} resumes at ({x:.1f}, {y:.1f}) in {zone}, from {source}",
                      name=claims.name, x=state["x"], y=state["y"], zone=state["zone"],
                      source=source)
        self.node._enter_world(
            Resumed(claims.name, state, claims.for_node == self.node.node_id), session)

    def _handed_here(self, claims: Claims) -> bool:
        """
        Whether ``claims`` bring a player its old owner handed to this node:
        a ``Redirect``'s token made out to this node, and the player's
        entity waiting for it.  Its old node ended its session, and no other
        node takes the token while this one is live: nobody needs telling.
        """
        return (claims.for_node == self.node.node_id
                and claims.name in self.node.placement.handoffs.arrivals)

    def resumed_elsewhere(self, name: str, nonce: bytes, expires: float) -> None:
        self.book.spend(nonce, expires)
        session = self.node.sessions.get(name)
        if session is not None:
            session.refuse(ErrorCode.NAME_IN_USE, "resumed on another node")
            self.node.remove_player(session)

    def numbers(self) -> dict[str, Any]:
        out = self.book.numbers()
        out["resumes_sent_on"] = self.redirected
        return out
