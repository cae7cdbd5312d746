"""
The game of one node: its rules, its world and the tick.

:class:`Node` owns no socket and no transport: each player's
:class:`~mmo.interfaces.ISession` owns its connection and everything
written to it, and the node hands it bytes.  The cluster, the store and the
extensions meet the node only through :mod:`mmo.interfaces` (the node is
their :class:`~mmo.interfaces.IGame`); :mod:`mmo.app` wires them and drives
:meth:`Node.tick` with a ``LoopingCall``.  Tests drive it with a ``Clock``
and ``StringTransport`` (:mod:`mmo.testing`).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from .. import __version__
from ..interfaces import (
    IAccountStore,
    ICluster,
    IGame,
    INumbers,
    ISession,
    LoginRefused,
    SentElsewhere,
)
from ..settings import Settings
from ..wire import fast
from ..wire import messages as m
from ..wire.messages import ErrorCode, Kind
from ..world.grid import Zone
from ..world.world import World
from .extensions import ExtensionHost, Player, state_of
from .limits import LoginLimiter
from .pacing import TickStats, UpdatePacing
from .placement import Placement
from .resume import Resumes
from .talk import Talk
from .tokens import TokenBook

_NO_MOVES = (b"", 0)
#: Each error code's name in the refusal counts (``ErrorCode(code)`` is slow).
_REFUSAL_NAMES = {int(code): code.name.lower() for code in ErrorCode}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is one of this machine's loopback addresses."""
    return host.startswith("127.") or host == "::1"


@implementer(IGame)
class Node(Talk):
    """One node's players, world and tick."""

    log = Logger()

    def __init__(
        self,
        settings: Settings,
        clock: IReactorTime,
        store: IAccountStore,
        node_id: str,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.clock = clock
        self.store = store
        self.node_id = node_id
        self.rng = rng or random.Random()
        self.server_string = f"mmo/{__version__}"
        config = settings.node
        self.world = World(config.zones, config.cell_size, config.max_speed, config.hysteresis)
        #: Configured ticks per second (the measured rate is the cluster's tick_hz).
        self.tick_rate = config.tick_rate
        self.tick_interval = config.tick_interval
        self.spawn_mode = config.spawn
        self.tick_number = 0
        self.connections: set[ISession] = set()
        self.per_ip: Counter[str] = Counter()
        #: name -> the session of each logged-in player
        self.sessions: dict[str, ISession] = {}
        self.accepting = True
        self.stats = TickStats()
        self.pacing = UpdatePacing(self.tick_interval, config.busy_cell)
        self.events = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.updates_out = 0
        self.refusals: Counter[str] = Counter()
        self._closed_waiters: list[Deferred] = []
        self._who_tick = -1
        self._who_frame: bytes | None = None
        #: The cluster sharing this node's world (``None``: the node is alone).
        self.cluster: ICluster | None = None
        #: Other parts whose numbers go into :meth:`snapshot` (the store's).
        self.reporters: list[INumbers] = []
        #: Refuses addresses and names after repeated failed logins.
        self.login_limiter = LoginLimiter.from_settings(self.limits, clock)
        #: The game extensions this node runs (enabled by :mod:`mmo.app`).
        self.extensions = ExtensionHost(self)
        self.reporters.append(self.extensions)
        #: Resume tokens (:meth:`take_tokens`); ``None``: logins need the password.
        self.resumes: Resumes | None = None
        #: Which node simulates which region (:mod:`mmo.server.placement`).
        self.placement = Placement(self, settings)
        self.reporters.append(self.placement)

    def take_tokens(self, book: TokenBook) -> None:
        """Give players resume tokens made and checked with ``book``."""
        self.resumes = Resumes(self, book)
        self.reporters.append(self.resumes)

    def report(self, source: INumbers) -> None:
        """Merge the numbers of ``source`` into every :meth:`snapshot` from now on."""
        self.reporters.append(source)

    # -- IGame -----------------------------------------------------------------

    def player(self, name: str) -> Player | None:
        session = self.sessions.get(name)
        if session is None:
            return None
        return self.extensions.players.get(session) or Player(session)

    def players(self) -> list[Player]:
        host = self.extensions.players
        return [host.get(s) or Player(s) for s in self.sessions.values()
                if s.entity is not None]

    def is_playing(self, name: str) -> bool:
        return name in self.sessions

    def commands(self) -> dict[str, str]:
        return {name: text for name, (_, text) in self.extensions.commands.items()}

    # -- connections ---------------------------------------------------------

    def admit(self, session: ISession) -> tuple[int, str] | None:
        """Accept a new connection, or return why not."""
        if not self.accepting:
            return ErrorCode.SHUTTING_DOWN, "the server is shutting down"
        limit = self.limits.max_per_ip
        if limit and self.per_ip[session.peer] >= limit and (
                self.limits.limit_loopback or not is_loopback(session.peer)):
            return ErrorCode.TOO_MANY_CONNECTIONS, (
                f"no more than {limit} connections from one address"
            )
        if len(self.connections) >= self.limits.max_players + 64:
            return ErrorCode.SERVER_FULL, "the server is full"
        self.connections.add(session)
        self.per_ip[session.peer] += 1
        return None

    def session_closed(self, session: ISession) -> None:
        if session in self.connections:
            self.connections.discard(session)
            self.per_ip[session.peer] -= 1
            if self.per_ip[session.peer] <= 0:
                del self.per_ip[session.peer]
        self.remove_player(session)
        if not self.connections and self._closed_waiters:
            waiters, self._closed_waiters = self._closed_waiters, []
            for d in waiters:
                d.callback(None)

    def count_refusal(self, code: int) -> None:
        self.refusals[_REFUSAL_NAMES.get(code) or str(code)] += 1

    # -- login ---------------------------------------------------------------

    def login(self, session: ISession, name: str, password: str) -> Deferred:
        create = self.settings.store.open_registration
        d = self.login_limiter.attempt(session.peer, name, lambda: self.store.authenticate(
            name, password, create))
        d.addCallback(self._enter_world, session)
        return d

    def resume(self, session: ISession, token: str) -> Deferred:
        """Back in the world with a resume token instead of a password."""
        if self.resumes is None:
            return fail(LoginRefused(ErrorCode.TOKEN_REFUSED,
                                     "this node takes no resume tokens; log in with the password"))
        return self.resumes.resume(session, token, self.store)

    def nodes_changed(self, live: frozenset[str]) -> None:
        self.placement.nodes_changed(live)

    def owned_cells(self) -> frozenset[tuple[str, int]]:
        return self.placement.owned_cells()

    def published(self, zone: str, cell: int) -> bool:
        z = self.world.zones.get(zone)
        return z is None or self.placement.published(z, cell)

    def handoff_received(self, from_node: str, handoff: Any) -> None:
        self.placement.handoffs.received(from_node, handoff)

    def resumed_elsewhere(self, name: str, nonce: bytes, expires: float) -> None:
        if self.resumes is not None:
            self.resumes.resumed_elsewhere(name, nonce, expires)

    def _enter_world(self, account: Any, session: ISession) -> None:
        if session.ended or session not in self.connections:
            return
        if len(self.sessions) >= self.limits.max_players:
            raise LoginRefused(ErrorCode.SERVER_FULL, "the server is full")
        name = account.name
        older = self.sessions.get(name)
        state = account.state
        if older is not None:
            # The newest login wins: a player whose connection died can come
            # straight back without waiting for the old one to time out, and
            # starts where the old session last stood (saved as it leaves).
            if older.entity is not None:
                state = state_of(older.entity)
            older.refuse(ErrorCode.NAME_IN_USE, "logged in again from elsewhere")
            self.remove_player(older)
        zone = self.world.zones.get(state.get("zone", "")) or self.world.default_zone
        if "x" in state and "y" in state:
            x, y = zone.clamp(float(state["x"]), float(state["y"]))
        else:
            x, y = self.spawn_point(zone)
        handoffs = self.placement.handoffs
        arrival = handoffs.arrive(name)
        if arrival is None:
            redirect = self.placement.elsewhere(name, zone, x, y,
                                                getattr(account, "for_me", False))
            if redirect is not None:
                raise SentElsewhere(redirect)
        now = self.clock.seconds()
        session.name = name
        if arrival is not None:
            # Handed here by its last node: the entity our players already see.
            e = session.entity = arrival.entity
            self.world.watch(e)
            if not arrival.has_data:
                e.data.update(state.get("data", {}))
        else:
            e = session.entity = self.world.spawn(name, zone, x, y, Kind.PLAYER, view=True,
                                                  now=now)
            e.data.update(state.get("data", {}))
        handoffs.placed(name, e)
        self.sessions[name] = session
        self.log.info("player {name} joined zone {zone} from {peer}",
                      name=name, zone=zone.name, peer=session.peer)
        session.send(self._enter_world_msg(session))
        if self.resumes is not None:
            self.resumes.issue(session, now)
        self.extensions.login(session)

    def remove_player(self, session: ISession) -> None:
        """Save a session's player and take it out of the world."""
        e = session.entity
        if e is not None:
            self.log.info("player {name} left", name=session.name)
            self.extensions.logout(session)  # may still write to e.data
            session.entity = None
            self.store.save_state(session.name, state_of(e))
            self.world.despawn(e)
        if self.sessions.get(session.name) is session:
            del self.sessions[session.name]
            if self.resumes is not None:
                self.resumes.forget(session.name)
            self.placement.handoffs.forget(session.name)

    def _enter_world_msg(self, session: ISession) -> m.EnterWorld:
        e = session.entity
        assert e is not None and e.zone is not None
        z = e.zone
        return m.EnterWorld(
            e.id, z.name, e.x, e.y, z.width, z.height, z.cell_size,
            int(round(self.tick_rate)), self.node_id,
        )

    def spawn_point(self, zone: Zone) -> tuple[float, float]:
        """Near the zone's centre, so that new players meet (or anywhere)."""
        if self.spawn_mode == "random":
            return self.rng.uniform(0, zone.width), self.rng.uniform(0, zone.height)
        r = min(zone.cell_size / 2, zone.width / 2, zone.height / 2)
        return zone.clamp(
            zone.width / 2 + self.rng.uniform(-r, r),
            zone.height / 2 + self.rng.uniform(-r, r),
        )

    # -- requests from players -----------------------------------------------

    def move(self, session: ISession, seq: int, x: float, y: float, now: float) -> bool:
        """Apply a move if it is legal (else correct the client); whether it was."""
        e = session.entity
        assert e is not None
        reason = self.world.check_move(e, x, y, now)
        if reason is not None:
            self.count_refusal(ErrorCode.INVALID)
            session.correct(seq, reason, now)
            return False
        self.extensions.moved(session)
        return True

    def change_zone(self, session: ISession, name: str) -> None:
        e = session.entity
        assert e is not None
        zone = self.world.zones.get(name)
        if zone is None:
            session.error(ErrorCode.UNKNOWN_ZONE, f"no zone named {name!r}; zones: "
                          + ", ".join(self.world.zones))
            return
        x, y = self.spawn_point(zone)
        self.world.teleport(e, zone, x, y)
        e.last_move = self.clock.seconds()
        session.send(self._enter_world_msg(session))

    # -- the tick ------------------------------------------------------------

    def tick(self) -> None:
        """Advance the world one step and send every player one update."""
        started = time.perf_counter()
        self.tick_number += 1
        # Extensions first, so that what they move (NPCs) settles this tick.
        self.extensions.tick(self.tick_number)
        world = self.world
        world.settle()
        # After settle: it looks at the players the zones' records say moved.
        self.placement.handoffs.tick(self.clock.seconds())
        world.update_views()
        tick = self.tick_number
        pacing = self.pacing
        head = fast.tick_frame(tick, self.clock.seconds())
        # Per zone, per cell: its Moves frame and count.
        blobs: dict[Zone, dict[int, tuple[bytes, int]]] = {}
        # Per zone, per area (the 3x3 cells around one cell): its moves, the
        # count, and the whole write of a player there with nothing else new
        # (most of them): the Tick frame and the moves, joined once.
        areas: dict[Zone, dict[int, tuple[bytes, int, bytes]]] = {}
        enter_cache: dict[int, bytes] = {}
        # The writes of players with the same leaves and enters in one area.
        shared: dict[tuple[Any, ...], bytes] = {}
        updates = 0
        out = 0
        last_zone: Zone | None = None
        zone_areas: dict[int, tuple[bytes, int, bytes]] = {}
        for session in self.sessions.values():
            e = session.entity
            if e is None or not session.live:
                continue
            v = e.viewer
            zone = e.zone
            if zone is None:
                continue
            if zone is not last_zone:
                last_zone = zone
                zone_areas = areas.setdefault(zone, {})
            area = zone_areas.get(v.center)
            if area is None:
                moves, count = _area_moves(zone, v.cells, blobs.setdefault(zone, {}),
                                           pacing, tick)
                area = zone_areas[v.center] = (moves, count, head + moves if count else b"")
            if v.resync:
                v.resync = False
                visible = [world.entities[i] for i in v.visible if i in world.entities]
                parts = [head, fast.RESYNC]
                parts.extend(fast.enter_frames(visible, enter_cache))
                parts.append(area[0])
                data = b"".join(parts)
                updates += len(visible)
            elif v.leaves or v.enters:
                leaves = v.leaves
                enters = v.enters
                # The players who stayed in one area see the same entities
                # leave and enter (those crossing its edge): their write is
                # encoded and joined once and shared.
                key = (zone, v.center, tuple(leaves), tuple(enters))
                joined = shared.get(key)
                if joined is None:
                    parts = [head]
                    if leaves:
                        parts.extend(fast.leave_frames(leaves))
                    if enters:
                        parts.extend(fast.enter_frames(enters, enter_cache))
                    parts.append(area[0])
                    joined = shared[key] = b"".join(parts)
                data = joined
                updates += len(leaves) + len(enters)
            elif area[1]:
                data = area[2]
            else:
                continue
            updates += area[1]
            out += len(data)
            session.write_update(data)
        if self.cluster is not None:
            self.cluster.ticked(tick)
        world.end_tick()
        self.updates_out += updates
        self.bytes_out += out
        took = time.perf_counter() - started
        self.stats.add(took, self.tick_interval)
        pacing.observe(took)

    # -- housekeeping --------------------------------------------------------

    def sweep(self) -> None:
        """Let every connection enforce its time limits (login, idle, stuck)."""
        now = self.clock.seconds()
        for session in list(self.connections):
            session.sweep(now)
        if self.resumes is not None:
            self.resumes.sweep(now)

    # -- shutdown ------------------------------------------------------------

    def shutdown(self, text: str = "the server is shutting down") -> Deferred:
        """Tell every client, close every connection; fire when all are gone."""
        self.accepting = False
        notice = m.Notice(m.NoticeKind.SHUTDOWN, text)
        for session in list(self.connections):
            if not session.ended:
                session.send(notice)
                session.close()
        if not self.connections:
            return succeed(None)
        d: Deferred = Deferred()
        self._closed_waiters.append(d)
        return d

    # -- numbers -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The node's numbers now (the metrics datagram and /metrics read it)."""
        out = {
            "node_id": self.node_id,
            "connected_clients": len(self.sessions),
            "connections": len(self.connections),
            "entities": len(self.world.entities),
            "tick": self.tick_number,
            "tick_rate": self.tick_rate,
            "tick_ms_p50": self.stats.percentile(50) * 1000,
            "tick_ms_p99": self.stats.percentile(99) * 1000,
            "tick_overruns": self.stats.overruns,
            "events": self.events,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "updates_out": self.updates_out,
            "degraded": int(self.pacing.degraded),
            "degraded_ticks": self.pacing.degraded_ticks,
            "held_moves": self.pacing.held_moves,
            "refusals": dict(self.refusals),
        }
        for source in self.reporters:
            out.update(source.numbers())
        if self.cluster is not None:
            out.update(self.cluster.numbers())
        return out


def _area_moves(
    zone: Zone, cells: tuple[int, ...], blobs: dict[int, tuple[bytes, int]],
    pacing: UpdatePacing, tick: int,
) -> tuple[bytes, int]:
    """
    The Moves frames of ``cells`` this tick, and how many moves they hold;
    ``blobs`` keeps each cell's frames for the tick (cells of ``zone``).
    """
    moved = zone.moved
    # Not degraded and nothing held (most ticks): the cell's movers are
    # all its moves, as pacing.movers would say.
    paced = pacing.degraded or bool(pacing.held)
    parts = []
    count = 0
    for key in cells:
        blob = blobs.get(key)
        if blob is None:
            entities = moved.get(key)
            if paced:
                entities = pacing.movers(zone, key, entities, tick)
            blob = blobs[key] = (
                (fast.moves_frames(entities), len(entities)) if entities else _NO_MOVES)
        if blob[1]:
            parts.append(blob[0])
            count += blob[1]
    return b"".join(parts), count
