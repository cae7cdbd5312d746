"""
The receiving side: remote nodes, their cell streams, and the mirrors of
their entities in this node's world.

Mirrors are ordinary entities (``owner`` is the remote node's id, no
viewer), so local players get enter, move and leave for them exactly as for
local entities.  An update is absolute state, so it is applied even after a
gap; what a gap can lose (an arrival, a departure) comes back with the
stream's next keyframe, which lists every entity the owner has in the cell.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

from twisted.logger import Logger

from ..wire.base import Kind
from ..world.grid import Entity, Zone
from ..world.world import World
from .codec import NOWHERE, CellUpdate, Heartbeat

Cell = tuple[str, int]
MirrorKey = tuple[str, int]


#: Players remembered after their mirrors went (for a resume elsewhere).
MAX_LAST_SEEN = 20_000
#: How long records under a handed player's old key are ignored: longer than
#: its old owner goes on publishing it (the node's ghost time, 5 s) plus a
#: datagram's way.
SUPERSEDED_SECONDS = 10.0


class Mirror:
    """A local entity standing for a remote one, and where it was last reported."""

    __slots__ = ("entity", "key", "cell", "heard")

    def __init__(self, entity: Entity, key: MirrorKey, cell: Cell, heard: float) -> None:
        self.entity = entity
        self.key = key
        self.cell = cell
        self.heard = heard


@dataclass
class StreamState:
    """What a receiver knows of one remote cell stream."""

    last_seq: int = 0
    #: A gap was seen; the next complete keyframe clears it.
    waiting: bool = False
    #: The keyframe being assembled: its first sequence number, parts, ids.
    kf_first: int = -1
    kf_parts: set[int] = field(default_factory=set)
    kf_ids: set[int] = field(default_factory=set)


@dataclass
class RemoteNode:
    """Another node, as heard on the groups."""

    node_id: str
    epoch: int
    heard: float
    heartbeat: Heartbeat | None = None
    metrics: dict[str, Any] | None = None
    streams: dict[Cell, StreamState] = field(default_factory=dict)


class MirrorTable:
    """Remote nodes and the mirrors of their entities in ``world``."""

    log = Logger()

    def __init__(self, world: World, expiry: float,
                 wanted: Callable[[Cell], bool] = lambda cell: True) -> None:
        self.world = world
        #: Whether this node follows a cell (its players can see it).
        self.wanted = wanted
        self.expiry = expiry
        self.nodes: dict[str, RemoteNode] = {}
        self.mirrors: dict[MirrorKey, Mirror] = {}
        self.by_cell: dict[Cell, set[MirrorKey]] = {}
        #: The mirrors of players, by name (a name plays on one node at a time).
        self.players: dict[str, Mirror] = {}
        #: Where players whose mirrors went (their node died, they walked out
        #: of sight) were last heard: name -> (seconds, zone, x, y), newest last.
        self.last_seen: OrderedDict[str, tuple[float, str, float, float]] = OrderedDict()
        #: Keys of players handed to another node, and until when records
        #: under them are ignored.  Their old owner publishes them until the
        #: new owner's record reaches it (seconds, if none of its players
        #: follows them): never a second mirror, nor the first one moved back.
        self.superseded: dict[MirrorKey, float] = {}
        #: Player name -> the key last superseded for it: lifted when the
        #: player is handed to that key's node again (it takes the same
        #: entity back, under the same key, within the 10 s).
        self.handed_keys: dict[str, MirrorKey] = {}
        #: This node's own players being handed to another node (name ->
        #: (entity, that node)): its first full record of them makes the
        #: entity a mirror of theirs, the same entity for our watchers.
        self.handing: dict[str, tuple[Entity, str]] = {}
        #: Called with an entity of ours that became a mirror (above).
        self.adopted: Callable[[Entity], None] = lambda e: None
        self.handoffs_seen = 0
        self.gaps = 0
        self.unknown_moves = 0
        self.stale = 0
        self.expired_entities = 0
        self.expired_nodes = 0
        self.rejected_records = 0

    # -- nodes -----------------------------------------------------------------

    def heard_from(self, node_id: str, epoch: int, now: float) -> tuple[RemoteNode, bool]:
        """The node record, refreshed; ``True`` if the node is new (or restarted)."""
        node = self.nodes.get(node_id)
        if node is not None and node.epoch != epoch:
            self.log.info("node {node} restarted", node=node_id)
            self.drop_node(node_id)
            node = None
        if node is None:
            node = self.nodes[node_id] = RemoteNode(node_id, epoch, now)
            return node, True
        node.heard = now
        return node, False

    def drop_node(self, node_id: str) -> int:
        """Forget a node and despawn its mirrors; return how many."""
        node = self.nodes.pop(node_id, None)
        if node is None:
            return 0
        gone = [m for key, m in self.mirrors.items() if key[0] == node_id]
        for m in gone:
            self._despawn(m)
        return len(gone)

    # -- updates -----------------------------------------------------------------

    def apply(self, node: RemoteNode, u: CellUpdate, now: float) -> bool:
        """
        Apply one cell update from ``node``; return ``True`` when the stream
        needs a keyframe (records about entities this node never saw).
        """
        world = self.world
        zone = world.zones.get(u.zone)
        if zone is None:
            return False
        cell = (u.zone, u.cell)
        st = node.streams.get(cell)
        if st is None:
            st = node.streams[cell] = StreamState(u.seq - 1)
        ahead = (u.seq - st.last_seq) & 0xFFFFFFFF
        if ahead == 0 or ahead > 0x7FFFFFFF:
            # Reordered: only parts of the keyframe being assembled are late
            # but still useful; an old delta could undo newer positions.
            if not (u.keyframe and u.seq - u.part == st.kf_first):
                self.stale += 1
                return False
        else:
            if ahead > 1:
                self.gaps += 1
                st.waiting = True
            st.last_seq = u.seq
        owner = node.node_id
        mirrors = self.mirrors
        get = mirrors.get
        need_keyframe = False
        superseded = self.superseded
        width, height = zone.width, zone.height
        place = self._place
        for eid, kind, x, y, name in u.fulls:
            if not (isfinite(x) and isfinite(y)):
                self.rejected_records += 1
                continue
            x, y = zone.clamp(x, y)
            key = (owner, eid)
            m = get(key)
            if m is None:
                if superseded and key in superseded:
                    continue
                m = self._handed_over(key, kind, name, cell, now) if kind == Kind.PLAYER else None
                if m is None:
                    e = world.spawn(name, zone, x, y, kind, owner=owner, now=now)
                    m = mirrors[key] = Mirror(e, key, cell, now)
                    self.by_cell.setdefault(cell, set()).add(key)
                    if kind == Kind.PLAYER:
                        self.players[name] = m
                else:
                    place(m, zone, x, y, cell)
            else:
                place(m, zone, x, y, cell)
                m.heard = now
        move = zone.move
        for eid, x, y in u.moves:
            m = get((owner, eid))
            if m is None:
                if superseded and (owner, eid) in superseded:
                    continue
                self.unknown_moves += 1
                need_keyframe = True
                continue
            # Inside the zone (nearly always): finite, and clamping keeps it.
            if not (0.0 <= x <= width and 0.0 <= y <= height):
                if not (isfinite(x) and isfinite(y)):
                    self.rejected_records += 1
                    continue
                x, y = zone.clamp(x, y)
            # _place, inline: a mirror that stays in its zone and cell.
            e = m.entity
            if e.zone is zone:
                if e.x != x or e.y != y:
                    move(e, x, y)
                if m.cell != cell:
                    self._reindex(m, cell)
            else:
                place(m, zone, x, y, cell)
            m.heard = now
        for eid, to in u.gones:
            m = mirrors.get((owner, eid))
            if m is not None and m.cell == cell:
                if to != NOWHERE and self.wanted((u.zone, to)):
                    # Gone next door, where we follow it: its arrival there
                    # (maybe already applied, maybe still on its way) moves it.
                    self._reindex(m, (u.zone, to))
                else:
                    self._despawn(m)
        if u.keyframe:
            self._keyframe(owner, st, u, cell)
        return need_keyframe

    def _handed_over(self, key: MirrorKey, kind: int, name: str, cell: Cell,
                     now: float) -> Mirror | None:
        """
        A player's first full record from a new owner: the mirror of it we
        hold under its old owner's key, or our own entity of it we handed to
        that owner, now stands for it under the new key; ``None`` if neither.
        """
        old = self.players.get(name)
        if old is not None:
            self.superseded[old.key] = now + SUPERSEDED_SECONDS
            self._unindex(old)
            del self.mirrors[old.key]
            old.key = key
            old.entity.owner = key[0]
        else:
            handing = self.handing.get(name)
            if handing is None or handing[1] != key[0]:
                return None
            del self.handing[name]
            e = handing[0]
            e.owner = key[0]
            self.adopted(e)
            old = Mirror(e, key, cell, now)
        old.cell = cell
        old.heard = now
        self.mirrors[key] = old
        self.by_cell.setdefault(cell, set()).add(key)
        self.players[name] = old
        self.handoffs_seen += 1
        return old

    def _unindex(self, m: Mirror) -> None:
        keys = self.by_cell.get(m.cell)
        if keys is not None:
            keys.discard(m.key)
            if not keys:
                del self.by_cell[m.cell]

    def release(self, name: str) -> Entity | None:
        """
        The mirror of player ``name``, taken out of the table but left in
        the world (it was handed to this node: the same entity becomes ours).
        """
        m = self.players.pop(name, None)
        if m is None:
            return None
        self.superseded[m.key] = m.heard + SUPERSEDED_SECONDS
        self.handed_keys[name] = m.key
        self._unindex(m)
        del self.mirrors[m.key]
        m.entity.owner = None
        return m.entity

    def _keyframe(self, owner: str, st: StreamState, u: CellUpdate, cell: Cell) -> None:
        first = (u.seq - u.part) & 0xFFFFFFFF
        if first != st.kf_first:
            st.kf_first = first
            st.kf_parts = set()
            st.kf_ids = set()
        st.kf_parts.add(u.part)
        st.kf_ids.update(eid for eid, *_ in u.fulls)
        if u.parts and len(st.kf_parts) == u.parts:
            # The whole keyframe arrived: whatever it does not list is gone.
            listed = st.kf_ids
            for key in [k for k in self.by_cell.get(cell, ()) if k[0] == owner
                        and k[1] not in listed]:
                self._despawn(self.mirrors[key])
            st.waiting = False
            st.kf_first = -1
            st.kf_parts = set()
            st.kf_ids = set()

    def _place(self, m: Mirror, zone: Zone, x: float, y: float, cell: Cell) -> None:
        e = m.entity
        if e.zone is zone:
            # Repeats and keyframes restate positions: only a change is a move
            # (players get no Moves for entities standing still).
            if e.x != x or e.y != y:
                zone.move(e, x, y)
        else:
            self.world.teleport(e, zone, x, y)
        if m.cell != cell:
            self._reindex(m, cell)

    def _reindex(self, m: Mirror, cell: Cell) -> None:
        if m.cell != cell:
            old = self.by_cell.get(m.cell)
            if old is not None:
                old.discard(m.key)
                if not old:
                    del self.by_cell[m.cell]
            m.cell = cell
            self.by_cell.setdefault(cell, set()).add(m.key)

    def _despawn(self, m: Mirror) -> None:
        e = m.entity
        if self.players.get(e.name) is m:
            del self.players[e.name]
            if e.zone is not None:
                seen = self.last_seen
                seen.pop(e.name, None)
                seen[e.name] = (m.heard, e.zone.name, e.x, e.y)
                if len(seen) > MAX_LAST_SEEN:
                    seen.popitem(last=False)
        self.mirrors.pop(m.key, None)
        keys = self.by_cell.get(m.cell)
        if keys is not None:
            keys.discard(m.key)
            if not keys:
                del self.by_cell[m.cell]
        self.world.despawn(m.entity)

    # -- interest and expiry ------------------------------------------------------

    def forget_cell(self, cell: Cell) -> None:
        """No local player sees ``cell`` any more: drop its mirrors and streams."""
        for key in list(self.by_cell.get(cell, ())):
            self._despawn(self.mirrors[key])
        for node in self.nodes.values():
            node.streams.pop(cell, None)

    def expire(self, now: float) -> None:
        """Drop nodes and mirrors not heard from for ``expiry`` seconds."""
        limit = now - self.expiry
        for node_id in [n for n, node in self.nodes.items() if node.heard < limit]:
            self.log.info("node {node} expired (not heard for {s:.1f}s)",
                          node=node_id, s=now - self.nodes[node_id].heard)
            self.expired_nodes += 1
            self.expired_entities += self.drop_node(node_id)
        for m in [m for m in self.mirrors.values() if m.heard < limit]:
            self.expired_entities += 1
            self._despawn(m)
        for key in [k for k, t in self.superseded.items() if t < now]:
            del self.superseded[key]
        if self.handed_keys:
            for name in [n for n, k in self.handed_keys.items() if k not in self.superseded]:
                del self.handed_keys[name]

    def supersede(self, key: MirrorKey, now: float, name: str = "", to_node: str = "") -> None:
        """
        A Handoff of ``key``'s player ``name`` to ``to_node``: its old
        owner's word on it no longer counts, and ``to_node``'s does again.
        """
        self.superseded[key] = now + SUPERSEDED_SECONDS
        if name:
            self.handing_to(name, to_node)
            self.handed_keys[name] = key

    def handing_to(self, name: str, to_node: str) -> None:
        """
        Player ``name`` goes to ``to_node``: if ``to_node`` was its owner
        a moment ago, its key there counts again (``to_node`` takes the
        entity it handed away, kept as a mirror, back under that key).
        """
        key = self.handed_keys.get(name)
        if key is not None and key[0] == to_node:
            del self.handed_keys[name]
            self.superseded.pop(key, None)

    def whereabouts(self, name: str) -> tuple[float, str, float, float] | None:
        """Where the player ``name`` was last heard of: ``(seconds, zone, x, y)``."""
        m = self.players.get(name)
        zone = m.entity.zone if m is not None else None
        if m is not None and zone is not None:
            return m.heard, zone.name, m.entity.x, m.entity.y
        return self.last_seen.get(name)

    def find(self, owner: str, eid: int) -> Entity | None:
        m = self.mirrors.get((owner, eid))
        return m.entity if m is not None else None
