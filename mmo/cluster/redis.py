"""
The cluster's datagrams over Redis (or Valkey) pub/sub, for networks that
carry no multicast (Docker overlay networks, most Kubernetes networks, the
public clouds).

:class:`RedisTransport` is an :class:`~mmo.interfaces.IClusterTransport`:
each group is a channel named under the cluster's name (the control group
``NAME:control``, cell group *i* ``NAME:cell:i``), so that several clusters
can share one Redis.  The datagrams are the multicast ones, byte for byte
(header, MAC, sequence numbers, keyframes): Redis only carries them.  A node
subscribes to the channels of the groups it joins, over one connection,
and publishes over another (a subscribed connection cannot publish).

When Redis goes away the node goes on alone: what it sends meanwhile is
dropped (``send`` says so and the cluster counts it), nothing is queued, it
logs the outage once and reconnects with growing backoff; once both
connections are back and subscribed, ``connected()`` tells the cluster,
which announces itself and asks for keyframes.  Publishes waiting for
Redis's answer are bounded too: past ``max_backlog`` a datagram is dropped
and counted rather than buffered.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from ..cluster_settings import ClusterSettings
from ..config import RedisAddress
from ..interfaces import IClusterTransport, INumbers
from .groups import cell_block, metrics_group
from .redis_link import (
    Answers,
    PublisherProtocol,
    RedisLink,
    SubscriberProtocol,
    backoff,
    endpoint_for,
    publish_prefix,
)

#: Publishes that may wait for Redis's answer at once (about 10 MB of
#: datagrams); past it, datagrams are dropped and counted.
MAX_BACKLOG = 8192
#: Seconds between two keep-alive checks of each connection.
KEEPALIVE = 1.0
#: The first reconnection comes after this many seconds, then twice as many...
FIRST_RETRY = 0.05
#: Seconds between two log lines about refused publishes or a full backlog.
LOG_EVERY = 10.0


class RedisConfigError(Exception):
    """The Redis settings cannot be used (a file that cannot be read)."""


def channel_names(name: str, control: str, cells: Iterable[str],
                  metrics: str | None = None) -> dict[str, str]:
    """
    Group -> channel: ``NAME:control``, ``NAME:metrics`` and ``NAME:cell:i``
    for the i-th cell group.
    """
    names = {control: f"{name}:control"}
    if metrics is not None:
        names[metrics] = f"{name}:metrics"
    names.update({group: f"{name}:cell:{i}" for i, group in enumerate(cells)})
    return names


def read_secret(path: str, what: str) -> bytes:
    """The bytes of a secret's file; :class:`RedisConfigError` saying why not."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise RedisConfigError(f"cannot read {what} {path}: {e.strerror}") from None


def redis_transport(settings: ClusterSettings, reactor: Any) -> RedisTransport:
    """The transport of ``settings`` (``redis`` set): its channels, password and CA read."""
    address = settings.redis_address
    assert address is not None
    password = None
    if settings.redis_password_file:
        lines = read_secret(settings.redis_password_file, "--redis-password-file").splitlines()
        password = lines[0].decode("utf-8", "replace").strip() if lines else ""
        if not password:
            raise RedisConfigError(
                f"--redis-password-file {settings.redis_password_file} is empty")
    ca = read_secret(settings.redis_ca_file, "--redis-ca-file") if settings.redis_ca_file else None
    cells = cell_block(settings.mgroup, settings.cell_group_base, settings.cell_group_count)
    metrics = metrics_group(settings.mgroup, settings.cell_group_base,
                            settings.cell_group_count, settings.metrics_group)
    return RedisTransport(
        reactor, address,
        channel_names(settings.cluster_name, settings.mgroup, cells, metrics),
        settings.cluster_name, password=password, ca_pem=ca,
        # Back within a quarter of a keyframe interval of Redis, so that every
        # view is whole again within one: the nodes hear each other, send
        # keyframes at their next tick, and their players get them at the one
        # after.
        retry_max=max(0.1, min(5.0, settings.keyframe_interval / 4)))


@implementer(IClusterTransport, INumbers)
class RedisTransport:
    """
    Groups are Redis channels (``channels`` maps a group to its channel;
    another group gets ``NAME:group:GROUP``), on the server at ``address``.
    ``password`` (with the URL's user, if any) is sent with ``AUTH``;
    ``ca_pem`` checks a ``rediss://`` server's certificate.  ``retry_max``
    caps the reconnection backoff, in seconds.
    """

    log = Logger()

    def __init__(self, reactor: Any, address: RedisAddress, channels: Mapping[str, str],
                 name: str = "mmo", password: str | None = None, ca_pem: bytes | None = None,
                 retry_max: float = 0.5, max_backlog: int = MAX_BACKLOG,
                 rng: random.Random | None = None) -> None:
        self.reactor = reactor
        self.address = address
        self.name = name
        self.retry_max = retry_max
        self.max_backlog = max_backlog
        self._channels = {group: channel.encode() for group, channel in channels.items()}
        self._prefixes: dict[str, bytes] = {}
        self._answers = Answers(lambda e: self._refused_reply(e, "PUBLISH"))
        self._sources: dict[bytes, str] = {}
        #: The groups joined (asked for; subscribed whenever connected).
        self.joined: set[str] = set()
        self.receive: Callable[[bytes, Any], object] | None = None
        self.connected: Callable[[], object] | None = None
        #: Both connections usable, every joined channel subscribed.
        self.up = False
        self.outages = 0
        self.overflows = 0
        self.errors = 0
        self._down_since = 0.0
        self._told_down = False
        self._subscribed = False
        self._reported = {"overflow": (0, -1e9), "error": (0, -1e9)}
        endpoint = endpoint_for(reactor, address, ca_pem)
        delay = backoff(FIRST_RETRY, retry_max, rng or random.Random())
        self.publisher = RedisLink(
            "publisher", endpoint, lambda: PublisherProtocol(
                charset=None, password=password, dbid=address.db or None,
                convertNumbers=False, username=address.username or None),
            reactor, delay, self._publisher_ready, self._down)
        self.subscriber = RedisLink(
            "subscriber", endpoint, self._subscriber_protocol(password),
            reactor, delay, self._subscriber_ready, self._down)
        self._keepalive: LoopingCall | None = None

    def __str__(self) -> str:
        return f"Redis pub/sub at {self.address} as cluster {self.name!r}"

    def channel(self, group: str) -> bytes:
        """The Redis channel of ``group``."""
        channel = self._channels.get(group)
        if channel is None:
            channel = self._channels[group] = f"{self.name}:group:{group}".encode()
        return channel

    # -- IClusterTransport ---------------------------------------------------------

    def start(self, receive: Any, connected: Any = None) -> None:
        """Connect (in the background: :meth:`trouble` says how it goes)."""
        self.receive = receive
        self.connected = connected
        self._down_since = self.reactor.seconds()
        self.publisher.start()
        self.subscriber.start()
        self._keepalive = LoopingCall(self._check)
        self._keepalive.clock = self.reactor
        self._keepalive.start(KEEPALIVE, now=False)

    def stop(self) -> defer.Deferred:
        """Close both connections (what is being published is flushed first)."""
        self.receive = None
        self.up = False
        self.joined = set()
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        self._keepalive = None
        return defer.gatherResults([self.publisher.stop(), self.subscriber.stop()],
                                   consumeErrors=True)

    def join(self, group: str) -> None:
        if group in self.joined:
            return
        self.joined.add(group)
        p = self.subscriber.protocol
        if p is not None:
            p.subscribe([self.channel(group)]).addErrback(self._refused, "SUBSCRIBE")

    def leave(self, group: str) -> None:
        if group not in self.joined:
            return
        self.joined.discard(group)
        p = self.subscriber.protocol
        if p is not None:
            p.unsubscribe([self.channel(group)]).addErrback(self._refused, "UNSUBSCRIBE")

    def send(self, group: str, data: bytes) -> bool:
        p = self.publisher.protocol
        if p is None:
            return False  # Redis is away: dropped, not queued
        if len(p.replyQueue.waiting) >= self.max_backlog:
            self.overflows += 1
            self._report("overflow", "cluster: Redis at {addr} is {n} publishes behind: "
                         "{count} datagram(s) dropped since the last line")
            return False
        prefix = self._prefixes.get(group)
        if prefix is None:
            prefix = self._prefixes[group] = publish_prefix(self.channel(group))
        p.publish_datagram(prefix, data, self._answers)
        return True

    def trouble(self) -> str | None:
        if self.receive is None:
            return "the Redis transport is not started"
        if self.up:
            return None
        why = self.publisher.error or self.subscriber.error
        if not why:
            return f"connecting to Redis at {self.address}"
        away = self.reactor.seconds() - self._down_since
        return (f"no connection to Redis at {self.address} for {away:.1f}s ({why}); "
                "this node is alone until it reconnects")

    # -- INumbers ------------------------------------------------------------------

    def numbers(self) -> dict[str, Any]:
        p = self.publisher.protocol
        return {
            "transport_outages": self.outages,
            "transport_backlog": len(p.replyQueue.waiting) if p is not None else 0,
            "transport_overflows": self.overflows,
            "transport_errors": self.errors,
        }

    # -- the connections -------------------------------------------------------------

    def _subscriber_protocol(self, password: str | None) -> Callable[[], Any]:
        def make() -> Any:
            # No SELECT: pub/sub channels are the same in every database.
            p = SubscriberProtocol(charset=None, password=password, convertNumbers=False,
                                   username=self.address.username or None)
            p.deliver = self._deliver
            return p

        return make

    def _deliver(self, channel: bytes, data: bytes) -> None:
        receive = self.receive
        if receive is None:
            return
        source = self._sources.get(channel)
        if source is None:
            if len(self._sources) > 4 * len(self._channels) + 16:
                self._sources.clear()  # channels are few; bound it anyway
            source = self._sources[channel] = "redis " + channel.decode("utf-8", "replace")
        try:
            receive(data, source)
        except Exception:
            self.log.failure("cluster datagram from {source} could not be handled",
                             source=source)

    def _publisher_ready(self, protocol: Any) -> None:
        self._check_up()

    def _subscriber_ready(self, protocol: Any) -> None:
        self._subscribed = False
        # One channel per SUBSCRIBE: one confirmation per command keeps
        # txredisapi's replies in step with the commands.
        done = [protocol.subscribe([self.channel(g)]) for g in sorted(self.joined)]
        defer.gatherResults(done, consumeErrors=True).addCallbacks(
            self._all_subscribed, self._subscribe_failed, callbackArgs=(protocol,),
            errbackArgs=(protocol,))

    def _all_subscribed(self, _: Any, protocol: Any) -> None:
        if protocol is self.subscriber.protocol:
            self._subscribed = True
            self._check_up()

    def _subscribe_failed(self, failure: Any, protocol: Any) -> None:
        error = getattr(failure.value, "subFailure", failure).getErrorMessage()
        if protocol is self.subscriber.protocol:
            self.subscriber.cause = f"SUBSCRIBE refused: {error}"
            protocol.transport.abortConnection()

    def _check_up(self) -> None:
        if self.up or self.receive is None:
            return
        if self.publisher.protocol is None or not self._subscribed:
            return
        self.up = True
        away = self.reactor.seconds() - self._down_since
        if self.outages or self._told_down:
            self.log.info(
                "cluster: Redis at {addr} is back after {away:.1f}s; subscribed again to "
                "{n} channel(s), asking the other nodes for keyframes",
                addr=str(self.address), away=away, n=len(self.joined))
        else:
            self.log.info("cluster: connected to Redis at {addr} ({n} channel(s))",
                          addr=str(self.address), n=len(self.joined))
        self._told_down = False
        if self.connected is not None:
            self.connected()

    def _down(self, why: str, was_ready: bool) -> None:
        if self.receive is None:
            return
        if self.subscriber.protocol is None:
            self._subscribed = False
        if self.up:
            self.up = False
            self.outages += 1
            self._down_since = self.reactor.seconds()
            self.log.warn(
                "cluster: lost Redis at {addr} ({why}); this node goes on alone with its "
                "own players and reconnects with growing backoff (up to {most:g}s)",
                addr=str(self.address), why=why, most=self.retry_max)
            self._told_down = True
        elif not self._told_down:
            self.log.warn(
                "cluster: cannot reach Redis at {addr} ({why}); this node runs alone until "
                "it can, retrying with growing backoff (up to {most:g}s)",
                addr=str(self.address), why=why, most=self.retry_max)
            self._told_down = True

    def _check(self) -> None:
        self.publisher.check()
        self.subscriber.check()

    # -- one log line per burst ----------------------------------------------------

    def _refused(self, failure: Any, command: str) -> None:
        if not failure.check(txredisapi.ConnectionError):
            self._refused_reply(failure.value, command)

    def _refused_reply(self, error: Exception, command: str) -> None:
        self.errors += 1
        self._report("error", "cluster: Redis refused {count} command(s) since the last line, "
                     "the last a {command}: {why}", command=command, why=str(error))

    def _report(self, kind: str, text: str, **fields: Any) -> None:
        count, last = self._reported[kind]
        count += 1
        now = self.reactor.seconds()
        if now - last < LOG_EVERY:
            self._reported[kind] = (count, last)
            return
        p = self.publisher.protocol
        n = len(p.replyQueue.waiting) if p is not None else 0
        self.log.warn(text, addr=str(self.address), n=n, count=count, **fields)
        self._reported[kind] = (0, now)
