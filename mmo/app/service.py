"""
The node as a Twisted service: listeners, the tick, the sweep, shutdown.

:class:`NodeService` is the one place where the parts are wired: the node
(:mod:`mmo.server`), its store (:mod:`mmo.store`), its cluster
(:mod:`mmo.cluster`) and its game extensions (:mod:`mmo.plugins`) meet here,
each seeing the others only through :mod:`mmo.interfaces`.  The ``twistd
mmo`` plugin (:mod:`mmo.app.tap`) makes it from the parsed options.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ..cluster.auth import KeyFileError, load_or_create_key
from ..cluster.service import ClusterService
from ..config import default_node_id
from ..server.node import Node
from ..server.session import session_factory
from ..server.tokens import TokenBook
from ..server.websocket import websocket_factory
from ..settings import Settings
from ..store import PersistenceService, open_store
from .metrics import TickHistogram
from .systemd import SystemdNotifier
from .timing import ScheduledLoop, TickTiming
from .web import http_service


class NodeService(MultiService):
    """Runs a :class:`Node`: listens, ticks, sweeps, and shuts down cleanly."""

    log = Logger()

    def __init__(self, settings: Settings, reactor: Any,
                 makers: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        self.node_id = settings.node.node_id or default_node_id()
        self.pool = ThreadPool(minthreads=0, maxthreads=4, name="mmo-blocking")
        # Accounts and player state: SQLite or PostgreSQL (mmo.store).
        store, db = open_store(settings.store, self.node_id, reactor, self.run_blocking)
        self.node = Node(settings, reactor, store, self.node_id)
        self.node.report(store)
        self.persistence = PersistenceService(
            self.node, store, db, reactor, settings.store.autosave, settings.store.save_timeout)
        self.persistence.setServiceParent(self)
        self.ports: list[Any] = []
        #: The WebSocket listeners (``--websocket``), apart: the cluster's
        #: heartbeats name the first TCP port.
        self.websocket_ports: list[Any] = []
        self._listen_error: str | None = None
        self._tick = ScheduledLoop(self._safe_tick)
        self._tick.clock = reactor
        self._sweep = LoopingCall(self.node.sweep)
        self._sweep.clock = reactor
        # Operations: sd_notify, the tick histogram, /metrics and /healthz.
        self.last_tick_at: float | None = None
        self.notifier = SystemdNotifier.from_environ(reactor)
        self.tick_histogram = TickHistogram()
        self.node.stats.observers.append(self.tick_histogram.observe)
        # How late each tick starts: a blocked reactor shows here, not in
        # the tick's duration.
        self.tick_timing = TickTiming(settings.node.tick_interval, reactor)
        self.node.report(self.tick_timing)
        if settings.http.enabled:
            http_service(self).setServiceParent(self)
        # The cluster: multicast state sharing with the other nodes.
        self.cluster: ClusterService | None = None
        if settings.cluster.enabled:
            self.cluster = ClusterService(self.node, settings.cluster, reactor)
            self.cluster.setServiceParent(self)
            self.node.cluster = self.cluster
        # The game extensions, last: they start on a complete node.
        if makers is None:
            from ..plugins import find_makers

            makers = find_makers()
        self.node.extensions.enable_configured(settings.extensions, makers)

    def run_blocking(self, fn: Any) -> defer.Deferred:
        """Run ``fn`` in the node's thread pool (never on the reactor)."""
        return deferToThreadPool(self.reactor, self.pool, fn)

    def _take_tokens(self) -> None:
        """Resume tokens, sealed with a key derived from the cluster key (its file)."""
        path = self.settings.cluster.key_file
        try:
            key = load_or_create_key(path)
        except KeyFileError as e:
            raise SystemExit(f"mmo: {e}") from None
        self.node.take_tokens(TokenBook(key, self.reactor, self.settings.limits.resume_window))

    def endpoints(self) -> list[str]:
        return list(self.settings.node.endpoints)

    def startService(self) -> None:
        data_dir = self.settings.node.data_dir
        try:
            os.makedirs(data_dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise SystemExit(
                f"mmo: cannot create data directory {data_dir}: {e.strerror}") from None
        self._take_tokens()
        self.pool.start()
        self._listen_all("--listen", self.endpoints(), self.settings.node.listen_endpoints,
                         session_factory(self.node), self._listening)
        ws = self.settings.websocket
        if ws.enabled:
            self._listen_all("--websocket", ws.endpoints, ws.listen_endpoints,
                             websocket_factory(self.node, ws, self.reactor),
                             self._listening_websocket)
        super().startService()
        self._tick.start(self.settings.node.tick_interval, now=False).addErrback(
            lambda f: self.log.failure("tick loop stopped", f))
        limits = self.settings.limits
        interval = min(1.0, limits.login_timeout / 4, limits.idle_timeout / 4)
        self._sweep.start(interval, now=False)
        self.notifier.ready(f"node {self.node_id} listening on "
                            + ", ".join(self.endpoints()))
        self.reactor.callWhenRunning(self._install_sigterm)
        self.log.info(
            "node {node} started: {n} zones, {hz} Hz, cell {cell}",
            node=self.node_id, n=len(self.node.world.zones),
            hz=self.settings.node.tick_rate, cell=self.settings.node.cell_size,
        )

    def _install_sigterm(self) -> None:
        # twistd re-raises SIGTERM after a clean shutdown, so the process
        # would end "killed by signal 15"; a graceful stop is a success, so
        # SIGTERM here stops the reactor and twistd exits 0.
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_IGN, None):
            return
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.log.info("SIGTERM received, shutting down")
        self.reactor.callFromThread(self.reactor.stop)

    def _listen_all(self, flag: str, descriptions: Any, listen_on: Any, factory: Any,
                    listening: Any) -> None:
        # Each as configured (for messages) and as listened on (its backlog).
        for description, endpoint in zip(descriptions, listen_on, strict=True):
            try:
                ep = serverFromString(self.reactor, endpoint)
            except (ValueError, TypeError, KeyError) as e:
                self.pool.stop()
                raise SystemExit(f"mmo: bad {flag} endpoint {description!r}: {e}") from None
            d = ep.listen(factory)
            d.addCallbacks(listening, self._listen_failed,
                           callbackArgs=(description,), errbackArgs=(description,))
            # TCP, SSL and systemd endpoints listen at once: a port in use is
            # known here, and stops the start with a clear message.
            error = self._listen_error
            if error:
                self.pool.stop()
                raise SystemExit(error)

    def _listening_websocket(self, port: Any, description: str) -> None:
        self.websocket_ports.append(port)
        if self.cluster is not None and len(self.websocket_ports) == 1:
            self.cluster.websocket_port = port.getHost().port  # for heartbeats
        self.log.info("listening for WebSocket players on {endpoint} ({address})",
                      endpoint=description, address=port.getHost())

    def _listening(self, port: Any, description: str) -> None:
        self.ports.append(port)
        if self.cluster is not None and len(self.ports) == 1:
            self.cluster.tcp_port = port.getHost().port  # for heartbeats
        self.log.info("listening for players on {endpoint} ({address})",
                      endpoint=description, address=port.getHost())

    def _listen_failed(self, f: Failure, description: str) -> None:
        message = f"mmo: cannot listen on {description}: {f.getErrorMessage()}"
        if self.running:
            self.log.critical(message)
            self.reactor.stop()
        else:
            self._listen_error = message

    def _safe_tick(self) -> None:
        now = self.reactor.seconds()
        due = self._tick.due
        self.tick_timing.started(now if due is None else due, now)
        # A bug in one tick must not stop the loop (and with it the game).
        try:
            self.node.tick()
        except Exception:
            self.log.failure("tick {n} failed", n=self.node.tick_number)
        else:
            # Only a good tick feeds the systemd watchdog and /healthz.
            self.last_tick_at = self.reactor.seconds()
            self.notifier.ticked()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        self.notifier.stopping(f"draining {len(self.node.sessions)} players")
        self.log.info("shutting down: telling {n} players", n=len(self.node.sessions))
        yield defer.gatherResults(
            [defer.maybeDeferred(p.stopListening)
             for p in self.ports + self.websocket_ports],
            consumeErrors=True,
        )
        self.ports = []
        self.websocket_ports = []
        self.persistence.shutdown_began()
        done = self.node.shutdown()
        timeout = self.reactor.callLater(
            self.settings.limits.shutdown_grace, done.cancel)
        try:
            yield done
        except defer.CancelledError:
            for session in list(self.node.connections):
                session.close(abort=True)
        else:
            timeout.cancel()
        for loop in (self._tick, self._sweep):
            if loop.running:
                loop.stop()
        self.node.extensions.stop()  # once the players have left
        self.pool.stop()
        yield super().stopService()
        self.log.info("node {node} stopped", node=self.node_id)
