"""
The sending side of cell streams: each tick, this node's changes in each
cell become a record or a few (parts), encoded once; the outbox
(:mod:`mmo.cluster.outbox`) packs the records of the cells of one group
into as few datagrams as they fit in.

A stream is ``(zone, cell)``.  Its delta repeats every change of the last
:data:`REPEAT` ticks besides this one's, as absolute state (a full record
for an entity that arrived, a position for one that moved, its id for one
that left), so one or two lost datagrams lose nothing.  A keyframe lists
every owned entity of the cell in full; each stream sends one every
``keyframe_interval`` seconds (streams are staggered over the ticks), on
request, and once when it goes quiet (its last changes fully repeated), so
that the final state of a walk does not wait for the periodic keyframe.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

from ..world.grid import Entity, Zone
from ..world.world import World
from .codec import NOWHERE, cell_bodies_flat, full_item

#: Ticks a change is repeated after the one it happened in.
REPEAT = 2
#: Keyframe intervals an emptied stream still sends (empty) keyframes.
LINGER = 3

Cell = tuple[str, int]


class CellStream:
    """This node's owned entities in one cell and their recent changes."""

    __slots__ = ("zone", "cell", "owned", "recent", "fresh", "gone_to", "phase", "seq",
                 "emptied", "shown")

    def __init__(self, zone: str, cell: int, period: int, tile: int | None = None) -> None:
        self.zone = zone
        self.cell = cell
        self.owned: dict[int, Entity] = {}
        #: entity id -> tick of its last change here (kept REPEAT ticks)
        self.recent: dict[int, int] = {}
        #: entity id -> tick it arrived here (full records while fresh)
        self.fresh: dict[int, int] = {}
        #: entity id -> the cell it left this one for (NOWHERE: the zone)
        self.gone_to: dict[int, int] = {}
        # The cells of a tile share a group (groups.CellGroups) and a phase:
        # their keyframes go out in the same tick, in the same datagrams.
        self.phase = zlib.crc32(f"{zone}\x00{cell if tile is None else tile}".encode()) % period
        self.seq = 0
        #: Tick the last owned entity left; empty keyframes follow for a
        #: while so that receivers that lost the departures catch up.
        self.emptied = -1
        #: Whether other nodes' players may see the cell (``wanted``), once
        #: worked out; ``None`` until then and after the live nodes change.
        self.shown: bool | None = None


class Publisher:
    """Turns each tick's records into cell-stream bodies."""

    def __init__(self, keyframe_ticks: int,
                 tile_of: Callable[[str, int], int] | None = None) -> None:
        self.period = max(1, keyframe_ticks)
        #: The tile of a cell (``CellGroups.tile_of``): streams are staggered by tile.
        self.tile_of = tile_of
        self.streams: dict[Cell, CellStream] = {}
        #: Sequence numbers outlive streams, so that a stream that empties
        #: and fills again does not look like a restart to receivers.
        self.seqs: dict[Cell, int] = {}
        self.requested: set[Cell] = set()
        self.keyframes = 0
        #: Keyframes sent for monitors only (cells no other node sees).
        self.monitor_keyframes = 0

    def _stream(self, zone: Zone, key: int) -> CellStream:
        c = (zone.name, key)
        s = self.streams.get(c)
        if s is None:
            tile = self.tile_of(zone.name, key) if self.tile_of is not None else None
            s = self.streams[c] = CellStream(zone.name, key, self.period, tile)
            s.seq = self.seqs.get(c, 0)
        return s

    def request(self, cells: list[Cell]) -> None:
        """Send a keyframe of these cells (those we own entities in) next tick."""
        for c in cells:
            if c in self.streams:
                self.requested.add(c)

    def observe(self, world: World, tick: int, audience: bool = True,
                wanted: Callable[[str, int], bool] | None = None) -> None:
        """
        Record this tick's changes of owned entities (after ``settle``).

        Only who owns what is kept (the cell each owned entity stands in,
        which keyframes list) for the cells nobody else may see: all of
        them with no ``audience`` (no other node heard of), and those that
        ``wanted(zone, cell)`` says no other node's players may see.  The
        changes that deltas repeat are recorded for the others.  A cell that
        becomes visible gets a keyframe first: the node that starts to see
        it asks for one, and a change of the live nodes (the only thing
        that moves region borders) or a new node's arrival brings keyframes
        of every stream (``Outbox.announce``).
        """
        streams = self.streams
        shown = self._shown
        for zone in world.zones.values():
            zname = zone.name
            for key, gone in zone.departed.items():
                s = streams.get((zname, key))
                if s is None:
                    continue
                record = audience and shown(s, wanted)
                for eid, to in gone:
                    e = s.owned.get(eid)
                    if e is not None and (e.zone is not zone or e.cell != key):
                        del s.owned[eid]
                        if record:
                            s.gone_to[eid] = to if to >= 0 and e.zone is zone else NOWHERE
                            s.fresh.pop(eid, None)
                            s.recent[eid] = tick
                        if not s.owned:
                            s.emptied = tick
            for key, came in zone.arrived.items():
                s = None
                for e, _frm in came:
                    if e.owner is None and e.zone is zone and e.cell == key:
                        if s is None:
                            s = self._stream(zone, key)
                            record = audience and shown(s, wanted)
                        s.owned[e.id] = e
                        if record:
                            s.gone_to.pop(e.id, None)
                            s.recent[e.id] = tick
                            s.fresh[e.id] = tick
            if not audience:
                continue
            for key, moved in zone.moved.items():
                s = streams.get((zname, key))
                if s is None or not shown(s, wanted):
                    continue
                owned, recent = s.owned, s.recent
                for e in moved:
                    if e.owner is None and e.id in owned:
                        recent[e.id] = tick

    def _shown(self, s: CellStream, wanted: Callable[[str, int], bool] | None) -> bool:
        """Whether ``s``'s changes go out: others may see its cell, or asked for it."""
        if wanted is None:
            return True
        shown = s.shown
        if shown is None:
            shown = s.shown = wanted(s.zone, s.cell)
        return shown or (s.zone, s.cell) in self.requested

    def forget_shown(self) -> None:
        """The live nodes changed: which cells others may see is worked out again."""
        for s in self.streams.values():
            s.shown = None

    def own(self, e: Entity, tick: int) -> None:
        """``e`` (a mirror until now) is this node's: publish it, in full, from this tick."""
        zone = e.zone
        if zone is None:
            return
        s = self._stream(zone, e.cell)
        s.owned[e.id] = e
        s.gone_to.pop(e.id, None)
        s.recent[e.id] = tick
        s.fresh[e.id] = tick

    def disown(self, e: Entity) -> None:
        """
        Stop publishing ``e`` without saying it left (it was handed to
        another node, which publishes it now).
        """
        here = self.streams.get((e.zone.name, e.cell)) if e.zone is not None else None
        for s in ([here] if here is not None else []) + list(self.streams.values()):
            if s.owned.pop(e.id, None) is not None:
                s.recent.pop(e.id, None)
                s.fresh.pop(e.id, None)
                s.gone_to.pop(e.id, None)
                return

    def bodies(self, tick: int, room: int,
               wanted: Callable[[str, int], bool] | None = None, audience: bool = True,
               ) -> Iterator[tuple[bool, str, int, list[bytes], bool]]:
        """
        ``(keyframe, zone, cell, records, shown)`` for each stream with
        something to say.  ``shown``: for other nodes, which is every cell
        unless ``wanted(zone, cell)`` says otherwise (and those asked for),
        and none with no ``audience``.

        The cells that are not shown still send a keyframe every period,
        all in the same tick, for monitors only (``shown`` false: the outbox
        sends these on the metrics group, which no node joins), so that a
        monitor's map shows every entity, at least once a period.
        """
        oldest = tick - REPEAT
        period = self.period
        linger = LINGER * period
        requested = self.requested
        finished: list[Cell] = []
        # The monitors' keyframes: each period, every cell nobody else sees.
        for_monitors = tick % period == 0
        if not audience:
            # Nobody else listens: observe() recorded no change to repeat.
            if for_monitors:
                for c, s in self.streams.items():
                    if s.owned or tick - s.emptied <= linger:
                        yield self._monitor_keyframe(s, room)
                    else:
                        finished.append(c)
                self._finish(finished)
            return
        for c, s in self.streams.items():
            recent = s.recent
            settled = False
            fresh = s.fresh
            if recent:
                # min() first: most ticks nothing is old enough to drop.
                if min(recent.values()) < oldest:
                    for eid in [eid for eid, t in recent.items() if t < oldest]:
                        del recent[eid]
                        s.gone_to.pop(eid, None)
                    # The stream just went quiet: its last changes were sent
                    # REPEAT + 1 times; one keyframe now carries the final
                    # state to a receiver that lost all of them, without
                    # waiting for the periodic one.
                    settled = not recent
                if fresh and min(fresh.values()) < oldest:
                    for eid in [eid for eid, t in fresh.items() if t < oldest]:
                        del fresh[eid]
            owned = s.owned
            alive = bool(owned) or tick - s.emptied <= linger
            keyframe = alive and (
                (tick + s.phase) % period == 0 or c in requested or settled)
            if not (keyframe or recent) or not self._shown(s, wanted):
                # Nothing to say, or nobody else sees this cell: nothing to
                # encode, but for the monitors' keyframe of it.
                if not alive:
                    finished.append(c)
                elif for_monitors and not self._shown(s, wanted):
                    yield self._monitor_keyframe(s, room)
                continue
            gone_to = s.gone_to
            # Moves and departures flat (id, x, y, ... and id, to, ...): one
            # struct call packs them (codec.cell_bodies_flat).
            moves: list[Any] = []
            gones: list[int] = []
            if keyframe:
                fulls = [full_item(e.id, e.kind, e.x, e.y, e.name) for e in owned.values()]
                for eid in recent:
                    if eid not in owned:
                        gones += (eid, gone_to.get(eid, NOWHERE))
            else:
                fulls = []
                for eid in recent:
                    e = owned.get(eid)
                    if e is None:
                        gones += (eid, gone_to.get(eid, NOWHERE))
                    elif eid in fresh:
                        fulls.append(full_item(eid, e.kind, e.x, e.y, e.name))
                    else:
                        moves += (eid, e.x, e.y)
            out = cell_bodies_flat(s.zone, s.cell, s.seq + 1, fulls, moves, gones, room)
            s.seq = (s.seq + len(out)) & 0xFFFFFFFF
            if keyframe:
                self.keyframes += 1
            yield keyframe, s.zone, s.cell, out, True
        requested.clear()
        self._finish(finished)

    def _monitor_keyframe(self, s: CellStream,
                          room: int) -> tuple[bool, str, int, list[bytes], bool]:
        """A keyframe of ``s`` for monitors only (its sequence numbers are the stream's)."""
        fulls = [full_item(e.id, e.kind, e.x, e.y, e.name) for e in s.owned.values()]
        out = cell_bodies_flat(s.zone, s.cell, s.seq + 1, fulls, [], [], room)
        s.seq = (s.seq + len(out)) & 0xFFFFFFFF
        self.monitor_keyframes += 1
        return True, s.zone, s.cell, out, False

    def _finish(self, finished: list[Cell]) -> None:
        """Forget the streams emptied long enough ago (keeping their sequence numbers)."""
        for c in finished:
            self.seqs[c] = self.streams.pop(c).seq

    def prune(self, tick: int) -> None:
        """
        With nobody listening: forget the changes recorded while someone
        did (``observe`` records none now), and the streams emptied long
        enough ago.  A node's arrival brings keyframes of every stream,
        which carry all a receiver needs.
        """
        linger = LINGER * self.period
        finished = []
        for c, s in self.streams.items():
            if s.recent or s.fresh or s.gone_to:
                s.recent.clear()
                s.fresh.clear()
                s.gone_to.clear()
            if not s.owned and tick - s.emptied > linger:
                finished.append(c)
        for c in finished:
            self.seqs[c] = self.streams.pop(c).seq
        self.requested.clear()

    def owned_count(self) -> int:
        return sum(len(s.owned) for s in self.streams.values())
