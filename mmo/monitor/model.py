"""
The cluster as the monitor knows it, computed from datagrams alone.

:class:`ClusterModel` is sans-IO: :meth:`ClusterModel.datagram_received`
takes the bytes of one datagram and the time, :meth:`ClusterModel.advance`
moves the clock (node states, expiry, chart samples).  It reuses the
cluster's own codec, :class:`~mmo.cluster.opener.Opener` (authentication,
replay window) and mirror table, so it reads the datagrams exactly as a
node does; it never sends any.

A node is *live* while it is heard from, *stale* once it missed
:data:`STALE_INTERVALS` heartbeat intervals, *gone* after
:data:`GONE_INTERVALS` (when the other nodes expire it too) or at once when
it says bye; a gone node is forgotten after ``forget_after`` seconds.

The nodes not gone that sent a heartbeat are the *live nodes* the nodes
themselves give regions to: :attr:`ClusterModel.regions` (a
:class:`~.regions.RegionView`) follows them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from ..cluster import codec
from ..cluster.mirrors import MirrorTable
from ..cluster.opener import AUTH_FAILED, MALFORMED, REPORTED, SKEW, Opened, Opener
from ..settings import RegionSettings
from ..world.grid import ZoneSpec
from ..world.world import World
from .regions import RegionView

LIVE, STALE, GONE = "live", "stale", "gone"
#: Heartbeat intervals without a word before a node is stale, then gone.
STALE_INTERVALS = 2.0
GONE_INTERVALS = 3.0
#: Lines kept in the event log.
EVENT_LINES = 200
#: Seconds between two log lines about refused datagrams of one kind.
REFUSED_LOG_EVERY = 10.0


@dataclass
class NodeState:
    """One node as heard on the control and cell groups."""

    node_id: str
    epoch: int
    first_heard: float
    heard: float
    #: Order of appearance: the node's colour on the map and in the charts.
    index: int
    heartbeat: codec.Heartbeat | None = None
    metrics: dict[str, Any] | None = None
    state: str = LIVE
    #: Said bye (a clean stop) rather than falling silent.
    left: bool = False
    gone_at: float | None = None

    @property
    def interval(self) -> float:
        """The node's heartbeat interval in seconds (1 until a heartbeat says)."""
        if self.heartbeat is not None and self.heartbeat.interval_ms > 0:
            return self.heartbeat.interval_ms / 1000.0
        return 1.0

    def number(self, name: str, default: float = 0.0) -> float:
        """A numeric metric of the last metrics datagram, or ``default``."""
        if self.metrics is None:
            return default
        value = self.metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return default
        return float(value)

    @property
    def players(self) -> int:
        """Players connected to the node: its metrics, else its heartbeat."""
        if self.metrics is not None and "connected_clients" in self.metrics:
            return int(self.number("connected_clients"))
        return self.heartbeat.clients if self.heartbeat is not None else 0


@dataclass
class Counters:
    """What came in, and why any of it was dropped (the verdicts of ``opener``)."""

    opener: Opener = field(default_factory=lambda: Opener(None), repr=False)
    received: int = 0
    bytes_in: int = 0
    cell_updates: int = 0
    other_zones: int = 0

    @property
    def accepted(self) -> int:
        return self.opener.accepted

    @property
    def auth_failures(self) -> int:
        return self.opener.auth_failures

    @property
    def malformed(self) -> int:
        return self.opener.malformed

    @property
    def replays(self) -> int:
        return self.opener.replays

    @property
    def untimely(self) -> int:
        """The part of :attr:`replays` refused by their clock stamp."""
        return self.opener.untimely

    @property
    def no_key(self) -> int:
        """Datagrams that arrived before the key file could be read."""
        return self.opener.no_key


@dataclass(frozen=True)
class Event:
    """A line of the event log."""

    time: float
    text: str
    #: ``info``, ``warn`` (stale, authentication) or ``bad`` (gone).
    level: str = "info"


@dataclass
class Sample:
    """The cluster's numbers at one second: per node and in total."""

    time: float
    per_node: dict[str, dict[str, float]] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)


#: The numbers charted, each a metric (or ``players``) summed for the total,
#: except tick time where the total is the worst node.
SERIES = ("players", "events_per_sec", "tick_ms_p99", "bytes_out_per_sec",
          "cluster_bytes_out_per_sec")


class ClusterModel:
    """Nodes, counters, events, chart history and the map of one zone."""

    log = Logger()

    def __init__(
        self, zone: ZoneSpec, cell_size: float = 100.0, expiry: float = 3.0,
        history: float = 300.0, forget_after: float = 60.0, key: bytes | None = None,
        regions: RegionSettings | None = None,
    ) -> None:
        self.zone_spec = zone
        self.cell_size = cell_size
        #: Opens every datagram (no node id: the monitor sends nothing to loop back).
        self.opener = Opener(key)
        self.expiry = expiry
        self.forget_after = forget_after
        self.nodes: dict[str, NodeState] = {}
        self.counters = Counters(self.opener)
        self.events: deque[Event] = deque(maxlen=EVENT_LINES)
        #: Events logged since the start (the log keeps the last few).
        self.event_count = 0
        self.history: deque[Sample] = deque(maxlen=max(2, int(history)))
        self.world = World([zone], cell_size)
        self.mirrors = MirrorTable(self.world, expiry)
        #: Cell sizes the nodes reported that differ from ``cell_size``.
        self.other_cell_sizes: set[float] = set()
        #: Who owns each region of the zone, for the live nodes.
        self.regions = RegionView(zone, cell_size, regions)
        self._appeared = 0
        self._last_sample = -1e18

    @property
    def zone(self) -> str:
        return self.zone_spec.name

    @property
    def key(self) -> bytes | None:
        """The cluster key; ``None`` until it is known (datagrams are then counted only)."""
        return self.opener.key

    # -- input -----------------------------------------------------------------

    def datagram_received(self, data: bytes, now: float) -> None:
        """Read one datagram; anything wrong with it is counted, never raised."""
        c = self.counters
        c.received += 1
        c.bytes_in += len(data)
        opened = self.opener.open(data)
        if opened.ok:
            assert opened.header is not None
            self._dispatch(opened.header, opened.message, now, opened.restarted)
        elif opened.verdict in REPORTED:
            self._report(opened, now)

    def _report(self, opened: Opened, now: float) -> None:
        """One line in the event log per burst of refusals of one kind."""
        new = self.opener.to_report(opened.verdict, now, REFUSED_LOG_EVERY)
        if not new:
            return
        total = self.opener.counts[opened.verdict]
        if opened.verdict == AUTH_FAILED:
            self.event(now, f"{new} datagram(s) failed authentication "
                            f"({total} in all): another cluster key?", "warn")
            return
        sender = opened.header.sender if opened.header is not None else "?"
        if opened.verdict == MALFORMED:
            what = "could not be read (another version of mmo?)"
        else:
            what = f"were refused by their clock stamp (replayed, or a clock off by {SKEW:g}s+)"
        self.event(now, f"{new} datagram(s) {what} ({total} in all); the last from "
                        f"{sender}: {opened.why}", "warn")

    def _dispatch(self, header: codec.Header, message: Any, now: float,
                  restarted: bool) -> None:
        node = self.nodes.get(header.sender)
        if node is not None and (restarted or node.epoch != header.epoch):
            self.event(now, f"node {header.sender} restarted")
            self.mirrors.drop_node(header.sender)
            node.epoch = header.epoch
            node.heartbeat = node.metrics = None
            node.first_heard = now
            node.left = False
        if node is None:
            node = self.nodes[header.sender] = NodeState(
                header.sender, header.epoch, now, now, self._appeared)
            self._appeared += 1
            self.event(now, f"node {header.sender} appeared")
        elif node.left:
            # Said bye: only a restart (a new epoch) brings it back; late
            # datagrams of the old run do not.
            return
        node.heard = now
        remote, _new = self.mirrors.heard_from(header.sender, header.epoch, now)
        if node.state != LIVE and header.type != codec.BYE:
            self.event(now, f"node {header.sender} is live again")
            node.state = LIVE
            node.left = False
            node.gone_at = None
        kind = header.type
        if kind in (codec.CELL_DELTA, codec.CELL_KEYFRAME):
            for update in message:
                self.counters.cell_updates += 1
                if update.zone != self.zone:
                    self.counters.other_zones += 1
                    continue
                # A keyframe request would make the monitor a sender: the
                # next periodic keyframe fills any gap instead.
                self.mirrors.apply(remote, update, now)
        elif kind == codec.HEARTBEAT:
            if node.heartbeat is None:
                self.event(now, f"node {header.sender} at {message.address}:"
                                f"{message.tcp_port}, mmo {message.version}")
            if message.cell_size != self.cell_size \
                    and message.cell_size not in self.other_cell_sizes:
                self.other_cell_sizes.add(message.cell_size)
                self.event(now, f"node {header.sender} has cell size {message.cell_size:g}, "
                                f"the monitor {self.cell_size:g}: the map's regions are not "
                                f"theirs (give the monitor their --cell-size)", "warn")
            node.heartbeat = message
        elif kind == codec.METRICS:
            node.metrics = message
        elif kind == codec.BYE:
            node.left = True
            self._set_state(node, GONE, now, f"node {header.sender} left (said bye)")
            self.mirrors.drop_node(header.sender)
        if kind in (codec.HEARTBEAT, codec.BYE):
            self._check_live()

    # -- time ------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Update node states, expire dots, and take a chart sample each second."""
        for node in list(self.nodes.values()):
            silent = now - node.heard
            if node.state == GONE:
                if node.gone_at is not None and now - node.gone_at >= self.forget_after:
                    del self.nodes[node.node_id]
                continue
            if silent >= GONE_INTERVALS * node.interval:
                self._set_state(node, GONE, now,
                                f"node {node.node_id} is gone (not heard for {silent:.1f}s)")
            elif silent >= STALE_INTERVALS * node.interval and node.state == LIVE:
                self._set_state(node, STALE, now,
                                f"node {node.node_id} is stale (not heard for {silent:.1f}s)")
        self._check_live()
        self.mirrors.expire(now)
        # Mirrors only read positions; the grid's per-tick records are not
        # needed by anyone here, so they are settled and cleared at once.
        self.world.settle()
        for z in self.world.zones.values():
            z.clear_tick()
        if now - self._last_sample >= 1.0:
            self._last_sample = now
            self.history.append(self.sample(now))

    def _set_state(self, node: NodeState, state: str, now: float, text: str) -> None:
        if node.state == state:
            return
        node.state = state
        if state == GONE:
            node.gone_at = now
            self.mirrors.drop_node(node.node_id)
        self.event(now, text, "bad" if state == GONE else "warn")

    def live_nodes(self) -> frozenset[str]:
        """
        The nodes that own regions, as the nodes count them: heard from
        with a heartbeat (since their last restart), not gone.
        """
        return frozenset(n.node_id for n in self.nodes.values()
                         if n.state != GONE and n.heartbeat is not None)

    def _check_live(self) -> None:
        """Recompute region owners when the live node set changed."""
        self.regions.nodes_changed(self.live_nodes())

    def event(self, now: float, text: str, level: str = "info") -> None:
        self.events.append(Event(now, text, level))
        self.event_count += 1
        self.log.info("monitor: {text}", text=text)

    # -- what is known ---------------------------------------------------------

    def sample(self, now: float) -> Sample:
        """The numbers of every node not gone, and their totals."""
        s = Sample(now)
        for node in self.nodes.values():
            if node.state == GONE:
                continue
            s.per_node[node.node_id] = {
                "players": float(node.players),
                **{name: node.number(name) for name in SERIES[1:]},
            }
        rows = s.per_node.values()
        s.total = {name: sum(r[name] for r in rows) for name in SERIES}
        s.total["tick_ms_p99"] = max((r["tick_ms_p99"] for r in rows), default=0.0)
        return s

    def dots(self) -> list[tuple[float, float, str, int]]:
        """``(x, y, owner, kind)`` of every entity of the zone on the map."""
        return [(m.entity.x, m.entity.y, m.key[0], m.entity.kind)
                for m in self.mirrors.mirrors.values()]

    def set_key(self, key: bytes) -> None:
        self.opener.key = key
