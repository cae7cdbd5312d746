"""
What a node sends to the cluster, and on which group.

A datagram costs every node that hears it, wanted or not (a receiver
authenticates it before it can skip what it does not want), so the group
a message goes on decides who pays for it:

- the control group, which every node joins: heartbeats, chat, the
  questions and answers of :class:`~mmo.cluster.locate.Locator`,
  ``Resumed``, ``Bye``;
- the metrics group, which monitors join and nodes do not;
- the cell groups (:class:`~mmo.cluster.groups.CellGroups`), each followed
  by the nodes whose players see, or whose regions hold, one of its cells:
  each tick's cell records (:class:`~mmo.cluster.streams.Publisher`), as
  few datagrams per group as they fit in; keyframe requests, on the group
  of the cell asked about, which its publishers follow; and a player's
  ``Handoff``, on the group of its cell, which the new owner follows (on
  the control group in a zone too large for its owners to follow).

Every datagram leaves through :meth:`Outbox.write`: sealed, handed to the
transport, and counted (``datagrams_sent``, ``cluster_bytes_out``,
``send_errors``) in one place.  Nothing is sent while the outbox has no
sealer (the service is stopped).  What to send and when is the service's
(:mod:`mmo.cluster.service`), which also follows the groups and reads what
comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..interfaces import IClusterTransport, IGame
from ..world.regions import owners_follow
from . import codec
from .groups import Cell, CellGroups
from .stats import ClusterStats
from .streams import Publisher


class Outbox:
    """
    Seals this node's messages and sends them through ``transport``, each
    on its group: ``control``, ``metrics_group`` or the group of a cell in
    ``groups``.  ``publisher`` holds the cell streams of ``game``'s owned
    entities; the counters go to ``stats``.
    """

    def __init__(self, game: IGame, transport: IClusterTransport, stats: ClusterStats,
                 groups: CellGroups, control: str, metrics_group: str,
                 publisher: Publisher) -> None:
        self.game = game
        self.transport = transport
        self.stats = stats
        self.groups = groups
        self.control = control
        self.metrics_group = metrics_group
        self.publisher = publisher
        #: Seals every datagram; ``None`` while the service is stopped (nothing is sent).
        self.sealer: codec.Sealer | None = None
        #: Cells whose keyframes to ask for at the next tick.
        self._requests: list[Cell] = []
        #: Whether every stream sends a keyframe at the next tick.
        self._announce = False

    def start(self, sealer: codec.Sealer) -> None:
        """Send from now on, sealed by ``sealer``."""
        self.sealer = sealer

    def stop(self) -> None:
        """Say ``Bye`` on the control group, and send nothing more."""
        self.send_control(codec.BYE, lambda room: b"")
        self.sealer = None

    # -- datagrams ------------------------------------------------------------------

    def write(self, group: str, kind: int, body: bytes) -> None:
        """Seal ``body`` as a datagram of ``kind`` and send it on ``group``."""
        assert self.sealer is not None
        data = self.sealer.seal(kind, body)
        if not self.transport.send(group, data):
            self.stats.send_errors += 1
            return
        self.stats.sent += 1
        self.stats.bytes_out += len(data)

    def room(self) -> int:
        """How many bytes of body one datagram holds."""
        assert self.sealer is not None
        return codec.MAX_DATAGRAM - self.sealer.overhead

    def send_control(self, kind: int, body: Callable[[int], bytes]) -> None:
        """
        Send ``body(room)`` on the control group, if sending: the body is
        made only then, to fit the room a datagram has.
        """
        if self.sealer is not None:
            self.write(self.control, kind, body(self.room()))

    def send_control_bytes(self, kind: int, body: bytes) -> None:
        """Send ``body`` on the control group, if sending."""
        self.send_control(kind, lambda room: body)

    def send_metrics(self, values: dict[str, Any]) -> None:
        """The node's metrics ``values``, on the metrics group, if sending."""
        if self.sealer is not None:
            # Not on the control group: no node reads another's metrics, and
            # N nodes each hearing N - 1 of them a second would cost every
            # node more as the cluster grows.
            self.write(self.metrics_group, codec.METRICS,
                       codec.metrics_body(values, self.room()))

    # -- cell streams -----------------------------------------------------------------

    def announce(self) -> None:
        """
        Keyframes of every stream at the next tick: a node appeared, the
        live nodes changed, or the transport is back, and what others knew
        of this node's cells may be lost or out of date.  Which cells others
        may see is worked out again (region borders move with the live nodes).
        """
        self._announce = True
        self.publisher.forget_shown()

    def queue_requests(self, cells: list[Cell]) -> None:
        """Ask for keyframes of ``cells`` at the next tick (if anyone listens then)."""
        self._requests.extend(cells)

    def publish(self, tick: int, gained: list[Cell], audience: bool) -> None:
        """
        Per tick, after the grid settled: the records of this tick's changes
        of owned entities, on their cells' groups, and keyframe requests for
        the cells ``gained`` (newly followed) and those queued.  With no
        ``audience`` (no other node heard of), no move is looked at, only
        who owns what (``Publisher.observe``): a new node's heartbeat brings
        keyframes of everything at once.

        Each keyframe period, the cells no other node sees (all of them with
        no audience) send a keyframe on the metrics group, which monitors
        join and nodes do not: a monitor's map shows every entity.
        """
        if gained:
            self._requests.extend(gained)
        publisher = self.publisher
        publisher.observe(self.game.world, tick, audience, self.game.published)
        if self._announce:
            self._announce = False
            publisher.request(list(publisher.streams))
        if not audience:
            # No other node listens: nothing for them, and the monitors'
            # keyframes once a period.
            publisher.prune(tick)
            self._requests.clear()
            if tick % publisher.period:
                return
        group_for = self.groups.group_for
        monitors = self.metrics_group
        room = self.room()
        # The records of every cell sent this tick, by group and type, as
        # few datagrams as they fit in: receivers pay per datagram.
        batches: dict[tuple[str, bool], list[bytes]] = {}
        for keyframe, zone, cell, records, shown in publisher.bodies(
                tick, room, self.game.published, audience):
            key = (group_for(zone, cell) if shown else monitors, keyframe)
            batch = batches.get(key)
            if batch is None:
                batches[key] = records
            else:
                batch += records
        for (group, keyframe), records in batches.items():
            kind = codec.CELL_KEYFRAME if keyframe else codec.CELL_DELTA
            for body in codec.pack_records(records, room):
                self.write(group, kind, body)
        if self._requests:
            cells, self._requests = self._requests, []
            self.request_keyframes(cells)

    def request_keyframes(self, cells: list[Cell]) -> None:
        """
        Ask the owners of entities in ``cells`` for keyframes now: on each
        cell's group, which its publishers follow (their players see it, or
        it is in their regions).
        """
        room = self.room()
        for group, wanted in self.groups.sort(cells).items():
            for body in codec.request_bodies(wanted, room):
                self.write(group, codec.KEYFRAME_REQUEST, body)

    # -- handoffs -----------------------------------------------------------------------

    def send_handoff(self, entity: Any, to_node: str, data: bytes | None) -> None:
        """
        Tell ``to_node`` that our player ``entity`` is its now (``data``:
        what the game keeps of the player).

        The ``Handoff`` goes on the group of the cell the player stands in,
        which ``to_node`` follows (it owns that cell's region), and on the
        group of the cell the entity is published in if that differs (the
        grid's hysteresis), which the nodes that mirror it follow; in a zone
        too large for its owners to follow (:func:`owners_follow`), on the
        control group.
        """
        z = entity.zone
        record = codec.Handoff(to_node, entity.name, z.name if z is not None else "",
                               entity.id, entity.x, entity.y, data)
        if z is None or not owners_follow(z.cols, z.rows):
            self.send_control(codec.HANDOFF, record.body)
        elif self.sealer is not None:
            group_for = self.groups.group_for
            body = record.body(self.room())
            for group in {group_for(z.name, z.cell_at(entity.x, entity.y)),
                          group_for(z.name, entity.cell)}:
                self.write(group, codec.HANDOFF, body)
