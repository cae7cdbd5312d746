"""
The cluster as a Twisted service: the control group, the cell groups this
node's players need, and the timers for heartbeats, metrics and expiry.

Datagrams move through an :class:`~mmo.interfaces.IClusterTransport`
(:class:`~mmo.cluster.multicast.MulticastTransport` unless another is
given).  The service decides when the node speaks (at start and stop, on
its timers, each tick, in answer to what it hears); an
:class:`~mmo.cluster.outbox.Outbox` seals each message and picks its group.
Everything received goes to :meth:`ClusterService.datagram_received`,
opened by an :class:`~mmo.cluster.opener.Opener` and acted on here.  The
service sees its node as an :class:`~mmo.interfaces.IGame` and the node
sees it as an :class:`~mmo.interfaces.ICluster`: the node calls
:meth:`ClusterService.ticked` once per tick, after the grid settled and
before the tick's records are cleared.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from .. import __version__
from ..cluster_settings import ClusterSettings
from ..interfaces import ICluster, IClusterTransport, IGame, INumbers
from . import codec
from .auth import KeyFileError, load_or_create_key
from .chat import ClusterChat
from .groups import Cell, Interest, cluster_groups, zone_cols
from .locate import Locator
from .mirrors import MirrorTable
from .multicast import MulticastTransport
from .opener import AUTH_FAILED, LOOPED, MALFORMED, REPORTED, SKEW, Opened, Opener
from .outbox import Outbox
from .stats import ClusterStats
from .streams import Publisher

#: How often a node asks for a keyframe of a stream it cannot make sense of.
REQUEST_EVERY = 0.5
#: Seconds between two log lines about refused datagrams of one kind.
REFUSED_LOG_EVERY = 10.0
#: What a log line says of each kind of refused datagram.
REFUSED = {
    AUTH_FAILED: "failed authentication",
    MALFORMED: "were authentic but could not be read (another version of mmo?)",
}
UNTIMELY = (f"were refused by their clock stamp (recorded and replayed, or the sender's "
            f"clock is more than {SKEW:g}s off this host's: check NTP)")


def _redis_transport(settings: ClusterSettings, clock: Any) -> IClusterTransport:
    """The Redis transport of ``settings``; a sentence and exit when it cannot be made."""
    try:
        from .redis import RedisConfigError, redis_transport
    except ImportError as e:
        raise SystemExit(f"mmo: --redis needs txredisapi (pip install 'mmo[redis]'): {e}") \
            from None
    try:
        return redis_transport(settings, clock)
    except RedisConfigError as e:
        raise SystemExit(f"mmo: {e}") from None


@implementer(ICluster)
class ClusterService(Service):
    """
    Shares ``game``'s world with the other nodes through ``transport``.

    Without a transport, datagrams go over Redis pub/sub when the settings
    name a Redis server (a :class:`~mmo.cluster.redis.RedisTransport` on
    ``clock``, the reactor), else over multicast: a
    :class:`MulticastTransport` on ``multicast`` (an ``IReactorMulticast``,
    by default ``clock``) with the ``mport``, ``iface`` and ``ttl``
    settings.
    """

    log = Logger()

    def __init__(
        self, game: IGame, settings: ClusterSettings, clock: Any,
        multicast: Any = None, rng: random.Random | None = None,
        key: bytes | None = None, transport: IClusterTransport | None = None,
    ) -> None:
        self.game = game
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.node_id = game.node_id
        self.key = key
        self.control = settings.mgroup
        self.iface = settings.iface
        if transport is None and settings.redis:
            transport = _redis_transport(settings, clock)
        if transport is None:
            transport = MulticastTransport(
                multicast if multicast is not None else clock, settings.mport,
                self.iface, settings.ttl)
        self.transport: IClusterTransport = transport
        try:
            #: Where metrics go (``metrics_group``): a group monitors join and nodes do not.
            self.groups, self.metrics_group = cluster_groups(settings, zone_cols(game.world))
        except ValueError as e:
            raise SystemExit(f"mmo: {e}") from None
        kf = settings.keyframe_interval
        self.keyframe_interval = kf
        self.expiry = settings.expiry
        self.publisher = Publisher(round(kf * game.tick_rate), self.groups.tile_of)
        self.interest = Interest()
        self.mirrors = MirrorTable(game.world, self.expiry, self.interest.__contains__)
        self.mirrors.adopted = self.publisher.disown
        self.opener = Opener(key, self.node_id, clock=clock.seconds,
                             wanted=self.interest.cells.__contains__)
        self.stats = ClusterStats(self.opener)
        self.outbox = Outbox(game, transport, self.stats, self.groups, self.control,
                             self.metrics_group, self.publisher)
        self.locator = Locator(self.node_id, clock, self.outbox.send_control_bytes,
                               self._known, lambda: len(self._live) - 1)
        self.chat = ClusterChat(game, self.mirrors, clock, self.outbox.send_control)
        self.drop_fraction = settings.drop_received
        #: The node's player ports, for heartbeats (the node service sets them).
        self.tcp_port = 0
        self.websocket_port = 0
        self.epoch = 0
        #: Groups joined, each with the number of wanted cells mapped to it.
        self.joined: Counter[str] = Counter()
        #: When a keyframe of each cell was last asked for on hearing its records.
        self._requested_at: dict[tuple[str, int], float] = {}
        self._loops: list[LoopingCall] = []
        #: The live nodes the game was last told of (region ownership).
        self._live: frozenset[str] = frozenset((self.node_id,))

    # -- start and stop -------------------------------------------------------------

    def key_path(self) -> str:
        return self.settings.key_file

    def startService(self) -> None:
        if self.key is None:
            try:
                self.key = load_or_create_key(self.key_path())
            except KeyFileError as e:
                raise SystemExit(f"mmo: {e}") from None
        self.opener.key = self.key
        # Nothing recorded before this moment is accepted: the replay
        # window, in memory, starts empty.
        self.opener.start()
        # Larger after every restart, so that receivers tell a restart from
        # a replay of the previous run's datagrams.
        self.epoch = time.time_ns() // 1000
        started = self.transport.start(self._receive, self._connected)
        if isinstance(started, defer.Deferred):
            started.addErrback(lambda f: self.log.failure(
                "cluster transport {transport} failed to start", f, transport=self.transport))
        self.outbox.start(codec.Sealer(self.key, self.node_id, self.epoch, self.clock.seconds))
        self._join(self.control)
        self._follow_owned()
        for fn, interval in ((self.heartbeat, self.settings.heartbeat_interval),
                             (self.publish_metrics, 1.0),
                             (self.expire, self.keyframe_interval / 4)):
            loop = LoopingCall(fn)
            loop.clock = self.clock
            loop.start(interval, now=True).addErrback(
                lambda f: self.log.failure("cluster timer failed", f))
            self._loops.append(loop)
        super().startService()
        self.log.info(
            "cluster: node {node} on {group} over {transport}, {n} cell groups "
            "from {first}, keyframes every {kf}s",
            node=self.node_id, group=self.control, transport=str(self.transport),
            n=len(self.groups.groups), first=self.groups.groups[0], kf=self.keyframe_interval)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        self.chat.stop()
        if self.outbox.sealer is None:
            return defer.succeed(None)
        self.outbox.stop()
        self.joined.clear()
        self.interest.follow(frozenset())  # followed again (and joined) at the next start
        return defer.maybeDeferred(self.transport.stop)

    def _connected(self) -> None:
        """
        The transport reaches the other nodes (again): what they sent
        meanwhile is lost, and so is what this node sent.  Tell them at once
        (a heartbeat), send keyframes of every stream next tick, and ask for
        keyframes of every cell the players see.
        """
        if self.outbox.sealer is None:
            return
        self.outbox.announce()
        self.outbox.queue_requests(self.interest.seen())
        self.heartbeat()

    def ready(self) -> str | None:
        """Why the node should get no new players (its transport is cut off), or ``None``."""
        return self.transport.trouble()

    # -- groups ---------------------------------------------------------------------
    #
    # Several cells share a group: it is joined with the first cell that
    # needs it and left with the last, counted here once for any transport.

    def _join(self, group: str) -> None:
        self.joined[group] += 1
        if self.joined[group] == 1:
            self.stats.joins += 1
            self.transport.join(group)

    def _leave(self, group: str) -> None:
        self.joined[group] -= 1
        if self.joined[group] <= 0:
            del self.joined[group]
            self.stats.leaves += 1
            self.transport.leave(group)

    def _follow_owned(self) -> None:
        """
        Follow the cells the game owns (its regions) too: a ``Handoff`` into
        an empty part of its land comes on the group of the player's cell.
        No keyframe requests: no player here looks at a cell it only owns.
        """
        self._follow(*self.interest.follow(frozenset(self.game.owned_cells())))

    def _follow(self, gained: list[Cell], lost: list[Cell]) -> None:
        """Join the groups of the cells ``gained``, leave those of the cells ``lost``."""
        groups = self.groups
        for zone, cell in lost:
            self.mirrors.forget_cell((zone, cell))
            self._leave(groups.group_for(zone, cell))
        for zone, cell in gained:
            self._join(groups.group_for(zone, cell))

    # -- the node's own messages -----------------------------------------------------

    def heartbeat(self) -> None:
        game = self.game
        world = game.world
        hb = codec.Heartbeat(
            self.tcp_port, len(game.players()), len(world.entities),
            world.cell_size, int(self.settings.heartbeat_interval * 1000),
            self.settings.player_address, __version__, self.websocket_port)
        self.outbox.send_control(codec.HEARTBEAT, lambda room: hb.body())

    def publish_metrics(self) -> None:
        values = self.game.snapshot()
        values.update(self.stats.rates(values, self.clock.seconds()))
        self.outbox.send_metrics(values)

    # -- ICluster ---------------------------------------------------------------------

    def relay_chat(self, channel: int, sender: str, entity_id: int, text: str, zone: str,
                   target: str) -> bool:
        if self.outbox.sealer is None:
            return False
        return self.chat.relay(channel, sender, entity_id, text, zone, target)

    def resumed(self, name: str, nonce: bytes, expires: float) -> None:
        body = codec.Resumed(nonce, int(expires), name).body()
        self.outbox.send_control_bytes(codec.RESUMED, body)

    def hand_off(self, entity: Any, to_node: str, data: bytes | None) -> None:
        """
        Hand our player ``entity`` to ``to_node``: tell it (on the groups
        :meth:`Outbox.send_handoff <mmo.cluster.outbox.Outbox.send_handoff>`
        says), and let the entity become a mirror of theirs once they
        publish it.
        """
        self.outbox.send_handoff(entity, to_node, data)
        self.mirrors.handing[entity.name] = (entity, to_node)
        self.mirrors.handing_to(entity.name, to_node)

    def take_over(self, name: str) -> Any:
        """Our mirror of the player ``name``, made ours (published from now), or ``None``."""
        e = self.mirrors.release(name)
        if e is not None:
            self.publisher.own(e, self.game.tick_number)
        return e

    def forget_handoff(self, name: str) -> None:
        self.mirrors.handing.pop(name, None)

    def player_door(self, node_id: str) -> tuple[str, int, int] | None:
        """Where players reach ``node_id``: (address, TCP port, WebSocket port)."""
        node = self.mirrors.nodes.get(node_id)
        if node is None or node.heartbeat is None or not node.heartbeat.tcp_port:
            return None
        hb = node.heartbeat
        if self.clock.seconds() - node.heard > 2 * self.settings.heartbeat_interval:
            return None  # not heard lately: perhaps gone; send nobody there
        return hb.address, hb.tcp_port, hb.websocket_port

    def whereabouts(self, name: str) -> tuple | None:
        return self.mirrors.whereabouts(name)

    def _known(self, name: str) -> tuple | None:
        """Where this node knows ``name`` to be: its own player, or the mirrors' word."""
        p = self.game.player(name)
        if p is not None and p.zone is not None:
            return self.clock.seconds(), p.zone.name, p.x, p.y
        return self.mirrors.whereabouts(name)

    def locate(self, name: str) -> defer.Deferred:
        return self.locator.locate(name)

    def ticked(self, tick: int) -> None:
        """Per tick: follow the players' cells, publish owned changes."""
        outbox = self.outbox
        if outbox.sealer is None:
            return
        gained, lost = self.interest.update(self.game.world)
        self._follow(gained, lost)
        outbox.publish(tick, gained, bool(self.mirrors.nodes))

    def request_keyframes(self, cells: list[tuple[str, int]]) -> None:
        """Ask the owners of entities in ``cells`` for keyframes now, on the cells' groups."""
        self.outbox.request_keyframes(cells)

    # -- receiving ----------------------------------------------------------------------

    def _receive(self, data: bytes, source: Any) -> None:
        try:
            self.datagram_received(data, source)
        except Exception:
            self.log.failure("cluster datagram from {source} could not be handled",
                             source=source)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """One datagram from the transport: opened, counted, acted on."""
        stats = self.stats
        if self.drop_fraction and codec.peek_sender(data) != self.node_id \
                and self.rng.random() < self.drop_fraction:
            # Lost on purpose (testing), before any check, as the network would.
            stats.received += 1
            stats.bytes_in += len(data)
            stats.dropped += 1
            stats.dropped_on_purpose += 1
            return
        opened = self.opener.open(data, addr)
        if opened.verdict == LOOPED:
            return
        stats.received += 1
        stats.bytes_in += len(data)
        if not opened.ok:
            stats.dropped += 1
            if opened.verdict in REPORTED:
                self._report(opened, addr)
            return
        assert opened.header is not None
        self._dispatch(opened.header, opened.message)

    def _report(self, opened: Opened, addr: Any) -> None:
        """A log line per burst of refusals of one kind, not one per datagram."""
        verdict = opened.verdict
        n = self.opener.to_report(verdict, self.clock.seconds(), REFUSED_LOG_EVERY)
        if not n:
            return
        sender = opened.header.sender if opened.header is not None else "?"
        self.log.warn(
            "cluster: {n} datagram(s) {what} ({total} so far); the last from {addr}, "
            "node {sender}: {why}", n=n, what=REFUSED.get(verdict, UNTIMELY),
            total=self.opener.counts[verdict], addr=addr, sender=sender,
            why=opened.why or verdict)

    def _dispatch(self, header: codec.Header, message: Any) -> None:
        now = self.clock.seconds()
        mirrors = self.mirrors
        node, new = mirrors.heard_from(header.sender, header.epoch, now)
        if new:
            self.log.info("cluster: node {node} appeared", node=header.sender)
            # Keyframes of everything next tick, and a heartbeat now so that
            # the newcomer knows of this node at once.
            self.outbox.announce()
            self.heartbeat()
        kind = header.type
        if kind in (codec.CELL_DELTA, codec.CELL_KEYFRAME):
            # The records of the cells this node follows (the opener skipped
            # the others and counted them as filtered).
            wanted = []
            for update in message:
                if mirrors.apply(node, update, now):
                    cell = (update.zone, update.cell)
                    if now - self._requested_at.get(cell, -1e9) >= REQUEST_EVERY:
                        self._requested_at[cell] = now
                        wanted.append(cell)
            if wanted:
                self.outbox.request_keyframes(wanted)
        elif kind == codec.HEARTBEAT:
            if node.heartbeat is None and message.cell_size != self.game.world.cell_size:
                self.log.warn("node {node} has cell size {theirs}, this node {ours}: "
                              "their entities will be misplaced", node=header.sender,
                              theirs=message.cell_size, ours=self.game.world.cell_size)
            node.heartbeat = message
        elif kind == codec.METRICS:
            node.metrics = message  # a node of an older version sent it to the control group
        elif kind == codec.CHAT:
            self.chat.chat_received(header.sender, message)
        elif kind == codec.WHISPER_RECEIPT:
            self.chat.receipt_received(self.node_id, message)
        elif kind == codec.KEYFRAME_REQUEST:
            self.publisher.request(message)
        elif kind == codec.WHERE:
            self.locator.asked_by(header.sender, message)
        elif kind == codec.HERE:
            self.locator.answer(message)
        elif kind == codec.HANDOFF:
            mirrors.supersede((header.sender, message.entity_id), now, message.name,
                              message.to_node)
            if message.to_node == self.node_id:
                self.game.handoff_received(header.sender, message)
        elif kind == codec.RESUMED:
            self.game.resumed_elsewhere(message.name, message.nonce, message.expires)
        elif kind == codec.BYE:
            self.log.info("cluster: node {node} left", node=header.sender)
            mirrors.drop_node(header.sender)
        if kind in (codec.HEARTBEAT, codec.BYE):
            self._check_live()

    def _check_live(self) -> None:
        """Tell the game when the set of live nodes (with a heartbeat) changes."""
        live = frozenset([self.node_id, *(n for n, node in self.mirrors.nodes.items()
                                          if node.heartbeat is not None)])
        if live != self._live:
            self._live = live
            self.game.nodes_changed(live)
            self._follow_owned()
            # Cells others may see changed: everyone gets keyframes next tick.
            self.outbox.announce()

    def expire(self) -> None:
        self.mirrors.expire(self.clock.seconds())
        self._check_live()
        limit = self.clock.seconds() - 2 * REQUEST_EVERY
        for cell in [c for c, t in self._requested_at.items() if t < limit]:
            del self._requested_at[cell]

    # -- numbers ------------------------------------------------------------------------

    def numbers(self) -> dict[str, Any]:
        """The cluster's counters, merged into the node's snapshot."""
        out = self.stats.counters()
        m = self.mirrors
        out.update(
            owned_entities=self.publisher.owned_count(),
            mirrored_entities=len(m.mirrors),
            cluster_nodes=len(m.nodes),
            gaps=m.gaps,
            unknown_moves=m.unknown_moves,
            stale_updates=m.stale,
            expired_entities=m.expired_entities,
            expired_nodes=m.expired_nodes,
            keyframes_sent=self.publisher.keyframes,
            groups_joined=len(self.joined),
            transport_up=0 if self.transport.trouble() else 1,
        )
        if INumbers.providedBy(self.transport):
            # The transport's own counters (join failures, ...) add to the service's.
            for name, value in INumbers(self.transport).numbers().items():
                out[name] = out.get(name, 0) + value
        out.update(self.chat.numbers())
        return out
