"""
The node's numbers in the Prometheus text format.

Nothing here is updated on the hot path: the tick and the sessions keep
plain integer counters on the :class:`~mmo.server.node.Node` (and the
cluster on its own object), and a scrape reads them once, through
``snapshot()``, into metric families.  A scrape costs the same whether the
node carries ten players or ten thousand.

To export a new number, add a :class:`Spec` to :data:`NODE_METRICS` or
:data:`CLUSTER_METRICS` naming the key of the snapshot it comes from; a key
that the snapshot does not have is left out, so a spec may land before the
counter it reads.  A key whose value is a mapping becomes one series per
entry, with the spec's label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from .. import __version__

#: Upper bounds of the tick duration histogram, in seconds: fine below a
#: 50 ms budget (20 Hz), coarse past a second.
TICK_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
)


@dataclass(frozen=True)
class Spec:
    """One exported metric: where its value is in the snapshot, and its kind."""

    key: str
    name: str
    help: str
    kind: str = "counter"  # or "gauge"
    label: str = ""
    scale: float = 1.0


NODE_METRICS: tuple[Spec, ...] = (
    Spec("connected_clients", "mmo_players", "Players logged in on this node.", "gauge"),
    Spec("connections", "mmo_connections", "Open player TCP connections, logged in or not.",
         "gauge"),
    Spec("entities", "mmo_entities", "Entities in this node's world, local and mirrored.",
         "gauge"),
    Spec("max_players", "mmo_max_players", "Players this node accepts at once.", "gauge"),
    Spec("accepting", "mmo_accepting", "1 while the node accepts players, 0 while draining.",
         "gauge"),
    Spec("tick_rate", "mmo_tick_rate_hertz", "Configured simulation ticks per second.", "gauge"),
    Spec("tick", "mmo_ticks", "Simulation ticks run."),
    Spec("tick_overruns", "mmo_tick_overruns", "Ticks that took longer than their budget."),
    Spec("degraded", "mmo_degraded",
         "1 while busy cells update every other tick because ticks run long.", "gauge"),
    Spec("degraded_ticks", "mmo_degraded_ticks", "Ticks run with busy cells slowed down."),
    Spec("held_moves", "mmo_held_moves", "Moves held back one tick while degraded."),
    Spec("tick_ms_p50", "mmo_tick_recent_p50_seconds",
         "Median duration of the last 600 ticks.", "gauge", scale=0.001),
    Spec("tick_ms_p99", "mmo_tick_recent_p99_seconds",
         "99th percentile duration of the last 600 ticks.", "gauge", scale=0.001),
    Spec("tick_lag_max_ms", "mmo_tick_lag_recent_max_seconds",
         "Longest delay of a tick after its due time over the last 60 s.", "gauge",
         scale=0.001),
    Spec("tick_gap_max_ms", "mmo_tick_gap_recent_max_seconds",
         "Longest time between the starts of two ticks (or since the last one) "
         "over the last 60 s.", "gauge", scale=0.001),
    Spec("tick_lag_longest_ms", "mmo_tick_lag_max_seconds",
         "Longest delay of a tick after its due time since the node started.", "gauge",
         scale=0.001),
    Spec("tick_gap_longest_ms", "mmo_tick_gap_max_seconds",
         "Longest time between the starts of two ticks (or since the last one) "
         "since the node started.", "gauge", scale=0.001),
    Spec("ticks_skipped", "mmo_ticks_skipped",
         "Ticks that were due but never ran because the loop ran late."),
    Spec("events", "mmo_player_messages_received", "Messages received from players."),
    Spec("updates_out", "mmo_entity_updates_sent",
         "Entity updates (enter, move, leave) sent to players."),
    Spec("bytes_in", "mmo_player_received_bytes", "Bytes received from players."),
    Spec("bytes_out", "mmo_player_sent_bytes", "Bytes written to players."),
    Spec("refusals", "mmo_refusals", "Requests and connections refused, by reason.",
         label="reason"),
    Spec("resumes", "mmo_resumes", "Players back in the world with a resume token."),
    Spec("resumes_refused", "mmo_resumes_refused",
         "Resume tokens refused (malformed, altered, run out or used)."),
    Spec("resumes_sent_on", "mmo_resumes_sent_on",
         "Resume tokens made out to another live node, sent on there with a Redirect."),
    Spec("redirects", "mmo_redirects",
         "Logins sent to the node that owns the player's region."),
    Spec("handoffs_out", "mmo_handoffs_out", "Players handed to another node at a border."),
    Spec("handoffs_in", "mmo_handoffs_in", "Players handed to this node by another."),
    Spec("handoffs_unclaimed", "mmo_handoffs_unclaimed",
         "Players handed here whose client did not come within resume_window."),
)

#: The account store's numbers (``DatabaseAccountStore.snapshot()``).
STORE_METRICS: tuple[Spec, ...] = (
    Spec("db_saved", "mmo_db_saved_states", "Player states written to the database."),
    Spec("db_save_batches", "mmo_db_save_batches", "Save batches written."),
    Spec("db_save_errors", "mmo_db_save_errors", "Save batches that failed (and were retried)."),
    Spec("db_unsaved", "mmo_db_unsaved_players", "Player states waiting to be written.", "gauge"),
    Spec("db_last_batch_ms", "mmo_db_last_batch_seconds", "Time the last save batch took.",
         "gauge", scale=0.001),
)

#: The cluster's numbers (``ClusterService.numbers()``), read from the
#: node's snapshot or the cluster's, whichever has them.
CLUSTER_METRICS: tuple[Spec, ...] = (
    Spec("cluster_nodes", "mmo_cluster_nodes", "Other nodes heard from recently.", "gauge"),
    Spec("owned_entities", "mmo_cluster_owned_entities",
         "Entities this node owns and publishes.", "gauge"),
    Spec("mirrored_entities", "mmo_cluster_mirrored_entities",
         "Entities mirrored from other nodes.", "gauge"),
    Spec("groups_joined", "mmo_cluster_joined_groups",
         "Groups joined (multicast groups, or Redis channels subscribed).", "gauge"),
    Spec("datagrams_sent", "mmo_cluster_datagrams_sent", "Cluster datagrams sent."),
    Spec("datagrams_received", "mmo_cluster_datagrams_received",
         "Cluster datagrams received."),
    Spec("datagrams_dropped", "mmo_cluster_datagrams_dropped",
         "Cluster datagrams received and dropped, for any reason.", label="reason"),
    Spec("datagrams_dropped", "mmo_cluster_datagrams_dropped",
         "Cluster datagrams received and dropped, for any reason."),
    Spec("cluster_bytes_out", "mmo_cluster_sent_bytes", "Cluster datagram bytes sent."),
    Spec("cluster_bytes_in", "mmo_cluster_received_bytes", "Cluster datagram bytes received."),
    Spec("auth_failures", "mmo_cluster_authentication_failures",
         "Datagrams dropped because their authentication failed."),
    Spec("replays", "mmo_cluster_replays", "Datagrams dropped as replays."),
    Spec("datagrams_untimely", "mmo_cluster_untimely_datagrams",
         "Datagrams dropped by their clock stamp: recorded before this node started, "
         "or more than 30 s from its clock (also counted as replays)."),
    Spec("malformed", "mmo_cluster_malformed_datagrams", "Datagrams dropped as malformed."),
    Spec("dropped_on_purpose", "mmo_cluster_datagrams_dropped_on_purpose",
         "Datagrams dropped by the loss simulation."),
    Spec("send_errors", "mmo_cluster_send_errors",
         "Datagrams that could not be sent: refused by the kernel, or dropped while Redis "
         "was away or too far behind."),
    Spec("gaps", "mmo_cluster_sequence_gaps", "Gaps seen in other nodes' datagram sequences."),
    Spec("stale_updates", "mmo_cluster_stale_updates", "Updates older than what was applied."),
    Spec("keyframes_sent", "mmo_cluster_keyframes_sent", "Keyframes sent."),
    Spec("expired_entities", "mmo_cluster_expired_entities",
         "Mirrored entities expired for silence."),
    Spec("expired_nodes", "mmo_cluster_expired_nodes", "Other nodes expired for silence."),
    Spec("joins", "mmo_cluster_group_joins", "Multicast group joins."),
    Spec("leaves", "mmo_cluster_group_leaves", "Multicast group leaves."),
    Spec("join_failures", "mmo_cluster_group_join_failures", "Multicast group joins refused."),
    Spec("transport_up", "mmo_cluster_transport_up",
         "1 while the cluster transport reaches the other nodes (multicast: its socket is "
         "open; Redis: connected and subscribed), 0 while this node is alone.", "gauge"),
    Spec("transport_outages", "mmo_cluster_transport_outages",
         "Times the connection to Redis was lost."),
    Spec("transport_backlog", "mmo_cluster_transport_backlog",
         "Datagrams handed to Redis and not yet acknowledged by it.", "gauge"),
    Spec("transport_overflows", "mmo_cluster_transport_overflows",
         "Datagrams dropped because Redis was too many publishes behind."),
    Spec("transport_errors", "mmo_cluster_transport_errors",
         "Commands Redis refused (an ACL, a server that is not Redis, ...)."),
)


def families(specs: Iterable[Spec], snapshot: Mapping[str, Any]) -> Iterator[Metric]:
    """The metric families of ``specs`` whose keys ``snapshot`` has."""
    for spec in specs:
        value = snapshot.get(spec.key)
        # A labelled spec reads a mapping, a plain one a number: one key may
        # have both, and the one that does not fit its value is skipped.
        if value is None or bool(spec.label) != isinstance(value, Mapping):
            continue
        labels = [spec.label] if spec.label else []
        family: CounterMetricFamily | GaugeMetricFamily
        if spec.kind == "counter":
            family = CounterMetricFamily(spec.name, spec.help, labels=labels)
        else:
            family = GaugeMetricFamily(spec.name, spec.help, labels=labels)
        if isinstance(value, Mapping):
            for label_value, n in sorted(value.items()):
                family.add_metric([str(label_value)], float(n) * spec.scale)
        else:
            family.add_metric([], float(value) * spec.scale)
        yield family


class TickHistogram:
    """Cumulative tick durations in fixed buckets (the node observes each tick)."""

    def __init__(self, bounds: tuple[float, ...] = TICK_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # A linear scan: 17 bounds, most ticks stop in the first few.
        i = 0
        bounds = self.bounds
        n = len(bounds)
        while i < n and seconds > bounds[i]:
            i += 1
        self.counts[i] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs, ending with ``+Inf``, as Prometheus wants them."""
        out = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append((repr(bound), float(running)))
        running += self.counts[-1]
        out.append(("+Inf", float(running)))
        return out


class NodeCollector:
    """
    A prometheus_client collector over one node service.

    ``snapshot`` returns the node's numbers (:meth:`Node.snapshot` plus a few
    from the service); ``cluster`` returns the cluster's snapshot, or
    ``None`` while the node runs without one.  Both are called on the
    reactor thread, once per scrape.  ``histogram`` holds the ticks'
    durations, ``lag`` how late they started.
    """

    def __init__(
        self,
        snapshot: Callable[[], Mapping[str, Any]],
        histogram: TickHistogram | None = None,
        cluster: Callable[[], Mapping[str, Any] | None] | None = None,
        lag: TickHistogram | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.histogram = histogram
        self.cluster = cluster
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        info = InfoMetricFamily("mmo_node", "This node's id and version.")
        info.add_metric([], {"node_id": str(snap.get("node_id", "")), "version": __version__})
        yield info
        yield from families(NODE_METRICS, snap)
        yield from families(STORE_METRICS, snap)
        for name, help_, h in (
            ("mmo_tick_duration_seconds", "Time one simulation tick took.", self.histogram),
            ("mmo_tick_lag_seconds",
             "How late each tick started after its due time (event loop lag).", self.lag),
        ):
            if h is not None:
                hist = HistogramMetricFamily(name, help_)
                hist.add_metric([], h.cumulative(), sum_value=h.total)
                yield hist
        merged = dict(snap)
        if self.cluster is not None:
            merged.update(self.cluster() or {})
        yield from families(CLUSTER_METRICS, merged)


def make_registry(collector: NodeCollector, process: bool = True) -> CollectorRegistry:
    """A registry of this node's own (never the global one: tests run many nodes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    if process:
        ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
