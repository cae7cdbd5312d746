"""
Handing a player to the node that owns the region it walked into.

The old owner (A), once a player is more than ``region_margin`` past the
edge of the region it is owned in and the region it stands in now belongs to
another node (B), or when the live nodes change and its region went to B:

1. lets the extensions write the player's record (their ``logout`` hook)
   and saves it to the store;
2. sends B a ``Handoff`` datagram (name, zone, position, record) *before*
   it tells the client anything;
3. sends the client a ``Redirect`` to B with a token made out to B, and
   closes the connection;
4. keeps the player's entity in its world, standing and still published,
   until B publishes the player: then the entity becomes A's mirror of B's
   (:class:`~mmo.cluster.mirrors.MirrorTable`), so that A's players see no
   Leave and no Enter.  If B never does within ``GHOST_SECONDS``, it goes.

B, on the ``Handoff``, makes the player its own at once: its mirror of it,
if it had one, becomes its own entity (the same id for B's players), else a
new entity at that position.  It is published from B's next tick, so that
every other node's mirror of it changes owner without a Leave and an Enter.
When the client arrives with its token, the session takes that entity and
gets a full view (``EnterWorld``, then every visible entity); if it does
not arrive within ``resume_window``, the entity goes and its state is saved.

Moves the client sent to A after A decided are not applied; the
``EnterWorld`` from B carries the authoritative position, which is the
client's correction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from ..interfaces import ISession
from ..wire import messages as m
from ..wire.messages import Kind
from ..world.grid import Entity
from ..world.regions import RegionId, crossed
from .extensions import state_of

#: Seconds an entity handed away waits for its new owner to publish it.
GHOST_SECONDS = 5.0


@dataclass
class Arrival:
    """A player handed to this node, waiting for its client."""

    entity: Entity
    #: The extensions' record came with the handoff (else: the store's).
    has_data: bool
    deadline: float


class Handoffs:
    """One node's players crossing into other nodes' regions, both ways."""

    log = Logger()

    def __init__(self, node: Any, placement: Any, margin: float, window: float) -> None:
        self.node = node
        self.placement = placement
        self.margin = margin
        self.window = window
        #: name -> (region the player is owned in, its bounds with the margin)
        self.bounds: dict[str, tuple[RegionId, float, float, float, float]] = {}
        #: name -> (entity handed away, when to give up waiting)
        self.ghosts: dict[str, tuple[Entity, float]] = {}
        self.arrivals: dict[str, Arrival] = {}
        self.handed_out = 0
        self.handed_in = 0
        self.arrived = 0
        self.unclaimed = 0
        #: name -> when to try again a handoff that could not go (no door yet)
        self._later: dict[str, float] = {}
        #: Players placed since the last tick (their bounds are new).
        self._placed: set[str] = set()
        #: Whether the next tick looks at every player (the owners changed).
        self._everyone = True

    # -- where a player is owned -----------------------------------------------

    def placed(self, name: str, e: Entity) -> None:
        """``name`` plays here from now, owned in the region it stands in."""
        if e.zone is None:
            return
        layout = self.placement.ownership.layout
        region = layout.region_at(e.zone.name, e.x, e.y)
        x0, y0, x1, y1 = layout.zone(region[0]).bounds(region[1], region[2])
        mg = self.margin
        b = self.bounds[name] = (region, x0 - mg, y0 - mg, x1 + mg, y1 + mg)
        if self.placement.enabled:
            # The grid lists the player when a move takes it out of its
            # bounds (Zone.fenced): the tick looks at those, not at every move.
            e.fence = b[1:]
        self._placed.add(name)

    def forget(self, name: str) -> None:
        self.bounds.pop(name, None)
        self._later.pop(name, None)
        self._placed.discard(name)

    # -- the old owner's side ------------------------------------------------------

    def tick(self, now: float) -> None:
        """
        Hand away the players that walked out of this node's land; time out waits.

        Called once the tick's moves are settled.  Only a player whose move
        ended outside its bounds (the grid lists it: ``Zone.fenced``), that
        arrived somewhere (this tick's records of the zones: a new cell, a
        teleport, another zone), or was placed since the last tick, can have
        walked out; a player whose handoff waits for another try is looked at
        until it goes, and every player once after the regions changed owner.
        """
        if (not self.placement.enabled or self.node.cluster is None
                or self.placement.ownership.nodes == {self.node.node_id}):
            # Off, or this node alone owns every region: nobody can walk into
            # another's land.  Nobody is looked at meanwhile (a handoff put
            # off has nowhere to go); everybody is once that changes.
            self._everyone = True
            self._placed.clear()
            self._later.clear()
            self._expire(now)
            return
        sessions = self.node.sessions
        if self._everyone:
            self._everyone = False
            self._placed.clear()
            for name, session in list(sessions.items()):
                self._check_session(name, session, now)
        else:
            bounds = self.bounds
            for zone in self.node.world.zones.values():
                # Moves that stayed inside their bounds (most) are not listed.
                for e in zone.fenced:
                    b = bounds.get(e.name)
                    if b is not None:
                        self._check(e.name, e, b, now)
                for came in zone.arrived.values():
                    for e, _frm in came:
                        b = bounds.get(e.name)
                        if b is not None:
                            self._check(e.name, e, b, now)
            if self._placed:
                placed, self._placed = self._placed, set()
                for name in placed:
                    session = sessions.get(name)
                    if session is not None:
                        self._check_session(name, session, now)
        if self._later:
            for name in list(self._later):
                session = sessions.get(name)
                if session is not None:
                    self._check_session(name, session, now)
                t = self._later.get(name)
                if t is not None and t <= now:
                    # Due and not handed (back inside, or its own land): an
                    # entry that no longer holds anything back.
                    del self._later[name]
        self._expire(now)

    def _check_session(self, name: str, session: ISession, now: float) -> None:
        """Hand ``name``'s player away if it stands outside its bounds, in another's land."""
        e = session.entity
        b = self.bounds.get(name)
        if e is not None and b is not None:
            self._check(name, e, b, now)

    def _check(self, name: str, e: Entity, b: tuple[RegionId, float, float, float, float],
                now: float) -> None:
        """
        ``b`` are the bounds of the player ``name`` and ``e`` an entity of
        that name: if ``e`` is the player's own and has left them for another
        node's region, hand it there; for one of this node's, own it there.
        """
        if e.zone is None:
            return
        session = self.node.sessions.get(name)
        if session is None or session.entity is not e:
            return  # a mirror or an NPC of the same name, or gone
        zone = e.zone.name
        layout = self.placement.ownership.layout
        if b[0][0] == zone:
            if b[1] <= e.x <= b[3] and b[2] <= e.y <= b[4]:
                return
            region = crossed(layout, b[0], e.x, e.y, self.margin)
            if region is None:
                return
        else:  # another zone: no margin to keep
            region = layout.region_at(zone, e.x, e.y)
        to = self.placement.ownership.owner(region)
        if to == self.node.node_id:
            self.placed(name, e)
        elif self._later.get(name, 0.0) <= now:
            self.hand_off(session, to, now)

    def nodes_changed(self, now: float) -> None:
        """Regions changed owner: hand away the players standing in those now elsewhere."""
        self._everyone = True  # and the next tick looks at everybody again
        if not self.placement.enabled or self.node.cluster is None:
            return
        owner = self.placement.ownership.owner
        me = self.node.node_id
        for name, session in list(self.node.sessions.items()):
            b = self.bounds.get(name)
            if b is not None and session.entity is not None:
                to = owner(b[0])
                if to != me:
                    self.hand_off(session, to, now)

    def hand_off(self, session: ISession, to: str, now: float) -> bool:
        """Hand ``session``'s player to node ``to``; ``False`` if it cannot go yet."""
        node = self.node
        cluster, resumes = node.cluster, node.resumes
        door = cluster.player_door(to) if cluster is not None else None
        e = session.entity
        if door is None or resumes is None or e is None or e.zone is None:
            self._later[session.name] = now + 1.0
            return False
        name = session.name
        node.extensions.logout(session)  # the extensions write their record now
        state = state_of(e)
        node.store.save_state(name, state)
        data = json.dumps(state["data"], separators=(",", ":")).encode()
        cluster.hand_off(e, to, data)
        token = resumes.book.mint(name, e.zone.name, e.x, e.y, for_node=to)
        # The session lets go of the entity: its close saves and despawns nothing.
        session.entity = None
        e.fence = None
        del node.sessions[name]
        resumes.forget(name)
        self.forget(name)
        node.world.unwatch(e)
        self.ghosts[name] = (e, now + GHOST_SECONDS)
        session.send(m.Redirect(door[0], door[1], door[2], token))
        session.close()
        self.handed_out += 1
        self.log.info("player {name} handed to node {to} ({host}:{port})",
                      name=name, to=to, host=door[0], port=door[1])
        return True

    def _expire(self, now: float) -> None:
        node = self.node
        for name in [n for n, (_, t) in self.ghosts.items() if t <= now]:
            e, _ = self.ghosts.pop(name)
            if e.owner is None:
                # The new owner never published it: it goes (a Leave for watchers).
                if node.cluster is not None:
                    node.cluster.forget_handoff(name)
                node.world.despawn(e)
        for name in [n for n, a in self.arrivals.items() if a.deadline <= now]:
            a = self.arrivals.pop(name)
            self.unclaimed += 1
            self.log.info("player {name} was handed here but did not come", name=name)
            if a.has_data:
                node.store.save_state(name, state_of(a.entity))
            node.world.despawn(a.entity)

    # -- the new owner's side ------------------------------------------------------

    def received(self, from_node: str, h: Any) -> None:
        """A player handed to this node: make it ours now, and wait for its client."""
        node = self.node
        zone = node.world.zones.get(h.zone)
        if zone is None:
            self.log.warn("node {node} handed us {name} in unknown zone {zone}",
                          node=from_node, name=h.name, zone=h.zone)
            return
        if h.name in node.sessions or h.name in self.arrivals:
            return  # already here (a repeat, or the client beat the datagram)
        now = node.clock.seconds()
        x, y = zone.clamp(h.x, h.y)
        e = node.cluster.take_over(h.name) if node.cluster is not None else None
        ghost = self.ghosts.pop(h.name, None)
        if ghost is not None and ghost[0] is not e:
            g = ghost[0]
            if g.owner is None and g.zone is not None:
                if e is None:
                    # The entity we handed away, never heard of from the new
                    # owner (none of our players follows its cell), is still
                    # ours and still published under its key: it comes back
                    # as it is, the key watchers were told to count again.
                    e = g
                else:
                    node.world.despawn(g)  # a second entity of the player: gone
                if node.cluster is not None:
                    node.cluster.forget_handoff(h.name)
        if e is None:
            e = node.world.spawn(h.name, zone, x, y, Kind.PLAYER, now=now)
        elif e.zone is not zone:
            node.world.teleport(e, zone, x, y)
        elif (e.x, e.y) != (x, y):
            zone.move(e, x, y)
        # In the cell of its position, in our land: not one that the grid's
        # hysteresis kept in another's (publish_reach counts on it).
        zone.snap(e)
        e.last_move = now
        has_data = h.data is not None
        if has_data:
            try:
                record = json.loads(h.data)
            except ValueError:
                record, has_data = {}, False
            e.data = record if isinstance(record, dict) else {}
        self.arrivals[h.name] = Arrival(e, has_data, now + self.window)
        self.handed_in += 1

    def arrive(self, name: str) -> Arrival | None:
        """The entity waiting for ``name``'s client, which has just arrived."""
        a = self.arrivals.pop(name, None)
        if a is not None:
            self.arrived += 1
        return a

    def numbers(self) -> dict[str, Any]:
        return {"handoffs_out": self.handed_out, "handoffs_in": self.handed_in,
                "handoffs_arrived": self.arrived, "handoffs_unclaimed": self.unclaimed}
