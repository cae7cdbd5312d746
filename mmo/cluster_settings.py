"""
The cluster's settings: the keys of sharing the world with the other nodes
(multicast groups, Redis, the cluster key, keyframe and heartbeat intervals)
and :class:`ClusterSettings`, made from them once.

They are part of the node's keys (:data:`mmo.settings.NODE_KEYS` ends with
:data:`CLUSTER_KEYS`) and of :class:`mmo.settings.Settings`, which
re-exports :class:`ClusterSettings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import (
    ConfigError,
    Key,
    RedisAddress,
    boolean,
    build,
    cluster_name,
    group_or_auto,
    integer,
    ipv4,
    multicast_group,
    number,
    parse_redis_url,
    redis_url,
    text,
)

CLUSTER_KEYS = [
    Key("mgroup", "239.255.0.1", "Multicast control group (heartbeats, chat, "
        "what every node must hear).", multicast_group),
    Key("mport", 30001, "UDP port of every multicast group.", integer(1, 65535)),
    Key("iface", "127.0.0.1", "Address of the interface that sends and joins "
        "multicast; 127.0.0.1 keeps the cluster on this host.", ipv4),
    Key("advertise", "", "The address players reach this node at: other nodes "
        "send players here with a Redirect (default: the --iface address, or "
        "127.0.0.1 when that is 0.0.0.0; set it in containers and behind NAT).", text),
    Key("ttl", 0, "Multicast TTL: 0 stays on this host, 1 reaches the LAN.",
        integer(0, 255)),
    Key("cluster", True, "Share the world with other nodes over multicast or Redis "
        "(--no-cluster: this node alone).", boolean, flag=True),
    Key("cluster_key_file", "", "File with the cluster's HMAC key, shared by "
        "every node (default: DATA_DIR/cluster.key, created mode 0600 when "
        "absent).", text),
    Key("keyframe_interval", 1.0, "Seconds between full keyframes of a cell "
        "stream; entities and nodes not heard for 3 of them expire.",
        number(0.05, 60)),
    Key("heartbeat_interval", 1.0, "Seconds between node heartbeats on the "
        "control group.", number(0.05, 60)),
    Key("cell_group_base", "auto", "First multicast group of the block hashed "
        "over (zone, cell); auto: the address after --mgroup.", group_or_auto),
    Key("cell_group_count", 16, "Groups in the cell block (Linux joins at "
        "most net.ipv4.igmp_max_memberships, default 20, per socket).",
        integer(1, 4096)),
    Key("cell_group_tile", 3, "Cells a side of the square tiles hashed over the "
        "cell block: the cells of a tile share a group, and their records share "
        "datagrams (1: each cell hashed alone). Every node and monitor must agree.",
        integer(1, 16)),
    Key("metrics_group", "auto", "Multicast group of the nodes' metrics, which "
        "monitors join and nodes do not; auto: the address after the cell block.",
        group_or_auto),
    Key("redis", "", "Share the world over Redis (or Valkey) pub/sub instead of "
        "multicast, where the network carries no multicast: redis://HOST[:PORT][/DB], "
        "rediss://... for TLS; the password comes from --redis-password-file.", redis_url),
    Key("redis_password_file", "", "File whose first line is the Redis password "
        "(never on the command line); needs --redis.", text),
    Key("redis_ca_file", "", "PEM file of the CA that signs the Redis server's "
        "certificate, for rediss:// (default: the system's trust store).", text),
    Key("cluster_name", "mmo", "The cluster's name on Redis: its channels are "
        "NAME:control and NAME:cell:N, so that several clusters share one Redis.",
        cluster_name),
    Key("testing_drop_received", 0.0, "TESTING ONLY: fraction of received "
        "cluster datagrams dropped on purpose, to exercise loss recovery.",
        number(0, 1)),
]


@dataclass(frozen=True)
class ClusterSettings:
    """Sharing the world with the other nodes."""

    enabled: bool
    mgroup: str
    mport: int
    iface: str
    ttl: int
    #: The cluster key's file (``DATA_DIR/cluster.key`` unless configured).
    key_file: str
    keyframe_interval: float
    heartbeat_interval: float
    cell_group_base: str
    cell_group_count: int
    #: Cells a side of the tiles hashed over the cell block (1: each cell alone).
    cell_group_tile: int
    #: The metrics' group (``"auto"``: the address after the cell block).
    metrics_group: str
    #: Testing only: the fraction of received datagrams dropped on purpose.
    drop_received: float
    #: A Redis URL: the datagrams go over Redis pub/sub; ``""``: over multicast.
    redis: str = ""
    redis_password_file: str = ""
    redis_ca_file: str = ""
    #: The prefix of the cluster's Redis channels.
    cluster_name: str = "mmo"
    #: Where players reach this node (``--advertise``, else derived from ``iface``).
    advertise: str = ""

    @property
    def player_address(self) -> str:
        """The address other nodes' Redirects send players to."""
        if self.advertise:
            return self.advertise
        return "127.0.0.1" if self.iface == "0.0.0.0" else self.iface

    @property
    def redis_address(self) -> RedisAddress | None:
        """Where the Redis server is, or ``None`` for multicast."""
        return parse_redis_url(self.redis) if self.redis else None

    @property
    def expiry(self) -> float:
        """Seconds after which an entity or node not heard from expires."""
        return 3 * max(self.keyframe_interval, self.heartbeat_interval)

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> ClusterSettings:
        """The cluster settings of checked ``values``; the Redis keys need ``redis``."""
        for key in ("redis_password_file", "redis_ca_file"):
            if values.get(key) and not values.get("redis"):
                raise ConfigError(f"--{key.replace('_', '-')} needs --redis")
        if values.get("redis_ca_file") and not parse_redis_url(values["redis"]).tls:
            raise ConfigError("--redis-ca-file needs a rediss:// (TLS) --redis URL")
        key_file = values["cluster_key_file"] or os.path.join(values["data_dir"], "cluster.key")
        return build(cls, dict(values, key_file=key_file),
                     enabled="cluster", drop_received="testing_drop_received")
