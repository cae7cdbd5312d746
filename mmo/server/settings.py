"""The node's configuration keys: each is a TOML key and a ``twistd mmo`` flag."""

from __future__ import annotations

from mmo.config import (
    Key,
    Schema,
    boolean,
    choice,
    endpoint,
    group_or_auto,
    integer,
    ipv4,
    multicast_group,
    number,
    text,
    zone,
)

# group_or_auto lives in mmo.config now (the monitor shares it without
# importing the server); it stays importable from here.

#: /metrics and /healthz on this host only (9100 is also node_exporter's port).
DEFAULT_HTTP = "tcp:9100:interface=127.0.0.1"


def http_endpoint(value: object) -> str:
    """An endpoint string, or ``none`` for no HTTP listener."""
    if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
        return "none"
    return endpoint(value)


def extension_name(value: object) -> str:
    """The name of a game extension."""
    name = text(value).strip()
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"{value!r} is not an extension name")
    return name


def npc_count(value: object) -> str:
    """``ZONE:COUNT``: how many NPCs wander a zone."""
    from mmo.plugins.game.npcs import parse_npcs

    zone_name, count = parse_npcs(text(value))
    return f"{zone_name}:{count}"


NODE_KEYS = [
    # Listening --------------------------------------------------------------
    Key("tcp", 4000, "TCP port for players (used when no --listen is given).",
        integer(0, 65535), short="t"),
    Key("listen", [], "Endpoint for players, e.g. tcp:4000, "
        "ssl:4443:privateKey=key.pem, systemd:domain=INET:index=0.",
        endpoint, repeat=True),
    Key("node_id", "", "This node's id in the cluster (default: HOSTNAME-PID).",
        text),
    Key("data_dir", "mmo-data", "Directory for the node's state (cluster key, "
        "database).", text),
    # World ------------------------------------------------------------------
    Key("tick_hz", 10.0, "Simulation ticks per second.", number(1, 120)),
    Key("zone", ["world:2000x2000", "arena:500x500"],
        "A zone as NAME:WIDTHxHEIGHT; the first is where new players start.",
        zone, repeat=True),
    Key("cell_size", 100.0, "Area-of-interest radius: the side of a grid cell.",
        number(1, 100000)),
    Key("hysteresis", 10.0, "How far past a cell's edge an entity must go to "
        "change cell (no flicker on borders).", number(0, 100000)),
    Key("spawn", "center", "Where a new player appears: center (near the zone's "
        "centre, so that players meet) or random (anywhere in the zone).",
        choice("center", "random")),
    Key("busy_cell", 32, "Movers in one cell from which, while ticks take most of "
        "their time, the cell's moves go out every other tick (degrade, not fall behind).",
        integer(1, 1_000_000)),
    Key("max_speed", 50.0, "Fastest a player may move, in units per second.",
        number(0.001, 1e6)),
    # Game extensions --------------------------------------------------------
    Key("extension", ["commands", "npcs"], "A game extension to enable, by name "
        "(found with twisted.plugin in mmo/plugins; see docs/EXTENDING.md).",
        extension_name, repeat=True),
    Key("npcs", [], "NPCs wandering a zone, as ZONE:COUNT (needs the npcs "
        "extension), e.g. world:50.", npc_count, repeat=True),
    # Accounts ---------------------------------------------------------------
    Key("open_registration", True, "Create an account on the first login of "
        "an unknown name.", boolean, flag=True),
    Key("password_iterations", 100_000, "PBKDF2-SHA256 iterations for "
        "password hashes.", integer(1, 10_000_000)),
    Key("db", "", "Database of accounts and player state: empty for SQLite "
        "in DATA_DIR/mmo.sqlite3, sqlite:PATH, or postgresql://USER@HOST/DB "
        "(nodes that share players share one PostgreSQL).", text),
    Key("autosave", 30.0, "Seconds between saves of the players whose state "
        "changed (a kill -9 loses at most this much).", number(0.1, 86400)),
    Key("save_timeout", 10.0, "Seconds a stopping node waits for the last "
        "save of every player.", number(0.1, 3600)),
    Key("presence_ttl", 15.0, "Seconds after which a node that stopped "
        "refreshing its presence no longer holds its players' names (another "
        "node may let them log in).", number(1, 86400)),
    Key("login_failures_per_ip", 20, "Failed logins from one address within "
        "--login-failure-window before its logins are refused (0: no limit).",
        integer(0, 1_000_000)),
    Key("login_failures_per_name", 5, "Failed logins of one name within "
        "--login-failure-window before its logins are refused (0: no limit).",
        integer(0, 1_000_000)),
    Key("login_failure_window", 60.0, "Seconds a failed login is remembered.",
        number(1, 86400)),
    # Limits -----------------------------------------------------------------
    Key("max_frame", 16 * 1024, "Largest frame a client may send, in bytes.",
        integer(64, 16 * 1024 * 1024)),
    Key("max_players", 10_000, "Players this node accepts at once.",
        integer(1, 1_000_000)),
    Key("max_per_ip", 100, "Connections from one IP address (0: no limit).",
        integer(0, 1_000_000)),
    Key("login_timeout", 10.0, "Seconds a connection has to log in.",
        number(0.1, 3600)),
    Key("idle_timeout", 60.0, "Seconds without a frame before a logged-in "
        "player is disconnected.", number(0.1, 86400)),
    Key("move_rate", 30.0, "Moves per second a player may send (burst: "
        "twice that).", number(0.1, 10000)),
    Key("chat_rate", 2.0, "Chat messages per second a player may send "
        "(burst: 5).", number(0.01, 1000)),
    Key("output_buffer", 256 * 1024, "Unsent bytes a session may hold before "
        "it gets no more updates until it drains.", integer(4096, 1 << 30)),
    Key("stuck_timeout", 10.0, "Seconds a session may stay undrained before "
        "it is disconnected.", number(0.1, 3600)),
    Key("shutdown_grace", 2.0, "Seconds given to clients to read the shutdown "
        "notice before their connections are closed.", number(0, 300)),
    # Operations -------------------------------------------------------------
    Key("http", DEFAULT_HTTP, "Endpoint for HTTP /metrics, "
        "/healthz and /readyz; none turns it off.", http_endpoint),
    # Cluster ----------------------------------------------------------------
    Key("mgroup", "239.255.0.1", "Multicast control group (heartbeats, "
        "metrics, chat).", multicast_group),
    Key("mport", 30001, "UDP port of every multicast group.", integer(1, 65535)),
    Key("iface", "127.0.0.1", "Address of the interface that sends and joins "
        "multicast; 127.0.0.1 keeps the cluster on this host.", ipv4),
    Key("ttl", 0, "Multicast TTL: 0 stays on this host, 1 reaches the LAN.",
        integer(0, 255)),
    Key("cluster", True, "Share the world with other nodes over multicast "
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
    Key("testing_drop_received", 0.0, "TESTING ONLY: fraction of received "
        "cluster datagrams dropped on purpose, to exercise loss recovery.",
        number(0, 1)),
]

NODE_SCHEMA = Schema(NODE_KEYS)


if __name__ == "__main__":  # python -m mmo.server.settings > config/mmo.toml
    from ..config import sample_toml

    print(sample_toml(NODE_SCHEMA, "mmo node configuration: every key, at its default."), end="")
