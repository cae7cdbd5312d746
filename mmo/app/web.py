"""
The node's HTTP side: ``/metrics``, ``/healthz``, ``/readyz`` and the web
client at ``/play`` (:mod:`.play`).

:class:`HTTPService` listens on the ``--http`` endpoint string (127.0.0.1
only unless configured otherwise; ``none`` turns it off) with a
``twisted.web`` :class:`~twisted.web.server.Site`.  Every answer is computed
on the reactor thread from counters the node already keeps, so a scrape
takes well under a millisecond and never holds up a tick for long.

``/healthz`` answers whether the node does its job now (liveness, Docker's
``HEALTHCHECK``); ``/readyz`` whether it should be sent new players
(readiness, load balancers).  Both answer 200 with ``ok`` or 503 with one
reason per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ..settings import DEFAULT_HTTP
from ..wire.messages import ErrorCode
from .metrics import NodeCollector, make_registry, render
from .play import PlayResource

#: A tick this many tick periods (and at least this many seconds) late means
#: the loop is stuck.
STALL_PERIODS = 10
STALL_SECONDS = 2.0
#: Overloaded: at least this share of the last few seconds' ticks overran.
OVERLOAD_SHARE = 0.5
OVERLOAD_WINDOW_SECONDS = 5.0


@dataclass
class Health:
    """The result of one health or readiness check."""

    ok: bool
    reasons: list[str]

    def body(self) -> bytes:
        return ("ok\n" if self.ok else "".join(f"{r}\n" for r in self.reasons)).encode()


def overload_reason(samples: list[float], budget: float, tick_rate: float) -> str | None:
    """Why the recent ticks count as overloaded, or ``None``."""
    window = max(1, int(tick_rate * OVERLOAD_WINDOW_SECONDS))
    recent = samples[-window:]
    if len(recent) < min(window, 10):
        return None
    over = sum(1 for s in recent if s > budget)
    if over < OVERLOAD_SHARE * len(recent):
        return None
    worst = max(recent)
    return (f"overloaded: {over} of the last {len(recent)} ticks overran their "
            f"{budget * 1000:.0f} ms budget (slowest {worst * 1000:.0f} ms)")


def liveness(service: Any) -> Health:
    """
    Healthy while listeners are up, the node accepts players and the tick
    keeps time.  ``service`` is a :class:`~mmo.server.service.NodeService`.
    """
    node = service.node
    reasons = []
    if not node.accepting:
        reasons.append("draining: the node is shutting down")
    if not service.ports:
        reasons.append("not listening for players")
    tick_rate = node.tick_rate
    now = service.reactor.seconds()
    last = service.last_tick_at
    if last is not None:
        late = now - last
        if late > max(STALL_SECONDS, STALL_PERIODS / tick_rate):
            reasons.append(f"tick stalled: no tick for {late:.1f} s")
    budget = node.tick_interval
    reason = overload_reason(node.stats.samples, budget, tick_rate)
    if reason:
        reasons.append(reason)
    return Health(not reasons, reasons)


def readiness(service: Any) -> Health:
    """Ready for new players: healthy, ticking already, and not full."""
    health = liveness(service)
    reasons = list(health.reasons)
    node = service.node
    if service.last_tick_at is None:
        reasons.append("starting: no tick yet")
    limit = node.limits.max_players
    if len(node.sessions) >= limit:
        reasons.append(f"full: {len(node.sessions)} of {limit} players")
    cluster = getattr(service, "cluster", None)
    ready = getattr(cluster, "ready", None)
    if callable(ready):
        why = ready()
        if why:
            reasons.append(f"cluster: {why}")
    return Health(not reasons, reasons)


class _Check(Resource):
    isLeaf = True

    def __init__(self, service: Any, check: Any) -> None:
        super().__init__()
        self.service = service
        self.check = check

    def render_GET(self, request: Request) -> bytes:
        health = self.check(self.service)
        request.setResponseCode(200 if health.ok else 503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return health.body()

    render_HEAD = render_GET


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, registry: Any) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return render(self.registry)


class _Root(Resource):
    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"mmo node: /metrics /healthz /readyz /play\n"


class _QuietSite(Site):
    """A site without an access log: a scrape every few seconds is not news."""

    def log(self, request: Any) -> None:
        pass


def make_site(service: Any, registry: Any) -> Site:
    """The ``twisted.web`` site of a node service."""
    root = _Root()
    root.putChild(b"", root)
    root.putChild(b"metrics", _Metrics(registry))
    root.putChild(b"healthz", _Check(service, liveness))
    root.putChild(b"readyz", _Check(service, readiness))
    root.putChild(b"play", PlayResource(service))
    site = _QuietSite(root)
    site.displayTracebacks = False
    site.noisy = False
    return site


class HTTPService(Service):
    """Serves :func:`make_site` on one endpoint string for as long as it runs."""

    log = Logger()

    def __init__(self, description: str, site: Site, reactor: Any,
                 required: bool = True) -> None:
        self.description = description
        #: False for the default endpoint: a second node on one host then
        #: runs without HTTP (with a warning) instead of refusing to start.
        self.required = required
        self.site = site
        self.reactor = reactor
        self.port: Any = None
        self._error: str | None = None

    def startService(self) -> None:
        try:
            ep = serverFromString(self.reactor, self.description)
        except (ValueError, TypeError, KeyError) as e:
            raise SystemExit(f"mmo: bad --http endpoint {self.description!r}: {e}") from None
        d = ep.listen(self.site)
        d.addCallbacks(self._listening, self._failed)
        if self._error:
            # TCP endpoints listen at once: a port in use is known here.
            if self.required:
                raise SystemExit(self._error)
            self.log.warn("{error}; running without HTTP (set --http to another "
                          "endpoint, or --http none)", error=self._error)
        super().startService()

    def _listening(self, port: Any) -> None:
        self.port = port
        self.log.info("serving metrics and health on {endpoint} ({address})",
                      endpoint=self.description, address=port.getHost())

    def _failed(self, f: Failure) -> None:
        message = f"mmo: cannot serve HTTP on {self.description}: {f.getErrorMessage()}"
        if self.running:
            self.log.critical(message)
        else:
            self._error = message

    def stopService(self) -> Any:
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None


def service_snapshot(service: Any) -> dict[str, Any]:
    """The node's numbers for ``/metrics``: its snapshot and a few settings."""
    node = service.node
    snap = node.snapshot()
    # Every reason is a series from the start, so that rate() sees the first one.
    snap["refusals"] = {**{c.name.lower(): 0 for c in ErrorCode}, **snap["refusals"]}
    snap["max_players"] = node.limits.max_players
    snap["accepting"] = 1 if node.accepting else 0
    timing = getattr(service, "tick_timing", None)
    if timing is not None:
        # Since start: here only (the cluster's metrics datagram has no room).
        snap.update(timing.totals())
    return snap


def cluster_snapshot(service: Any) -> Any:
    """The cluster's numbers, when the service runs a cluster that has them."""
    cluster = getattr(service, "cluster", None)
    for name in ("numbers", "snapshot"):
        method = getattr(cluster, name, None)
        if callable(method):
            return method()
    return None


def http_service(service: Any) -> HTTPService:
    """The HTTP service of a node service, on its ``http`` endpoint."""
    collector = NodeCollector(
        lambda: service_snapshot(service),
        getattr(service, "tick_histogram", None),
        lambda: cluster_snapshot(service),
        getattr(getattr(service, "tick_timing", None), "lag_histogram", None),
    )
    site = make_site(service, make_registry(collector))
    description = service.settings.http.endpoint
    return HTTPService(description, site, service.reactor,
                       required=description != DEFAULT_HTTP)
