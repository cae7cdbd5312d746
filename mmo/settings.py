"""
The node's settings: its configuration keys (each a TOML key and a
``twistd mmo`` flag) and the typed, frozen objects made from them once.

:class:`Settings` holds one frozen dataclass per concern -- :class:`NodeSettings`,
:class:`LimitSettings`, :class:`StoreSettings`, :class:`HttpSettings`,
:class:`ClusterSettings`, :class:`WebSocketSettings`, :class:`RegionSettings` --
and each enabled game extension's own settings (an extension declares its keys
on its maker).  The cluster's keys and :class:`ClusterSettings` are in
:mod:`mmo.cluster_settings` (re-exported here).  Only these modules and
:mod:`mmo.config` read settings by key; everything else gets attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .cluster_settings import CLUSTER_KEYS, ClusterSettings
from .config import (
    ConfigError,
    Key,
    Schema,
    boolean,
    build,
    choice,
    endpoint,
    integer,
    number,
    text,
    with_backlog,
    zone,
)
from .world.grid import ZoneSpec
from .world.regions import RegionLayout, RegionPin, parse_pins

#: /metrics and /healthz on this host only (9100 is also node_exporter's port).
DEFAULT_HTTP = "tcp:9100:interface=127.0.0.1"


def http_endpoint(value: object) -> str:
    """An endpoint string, or ``none`` for no HTTP listener."""
    if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
        return "none"
    return endpoint(value)


def websocket_endpoint(value: object) -> str:
    """An endpoint string; a bare port number is ``tcp:PORT``."""
    if isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, str) and value.strip().isdigit()):
        return f"tcp:{integer(0, 65535)(value)}"
    return endpoint(value)


def origin_pattern(value: object) -> str:
    """An origin such as ``https://play.example.com``, with ``*`` wildcards."""
    pattern = text(value).strip()
    if not pattern or any(c.isspace() for c in pattern) or (
            "://" not in pattern and pattern not in ("*", "null")):
        raise ValueError(f"{value!r} is not an origin such as https://play.example.com "
                         "(* matches anything)")
    return pattern


def region_pins(value: object) -> tuple[RegionPin, ...]:
    """Region pins: ``ZONE[:RX,RY]=NODE`` strings, or a TOML table of them."""
    return parse_pins(value)


def extension_name(value: object) -> str:
    """The name of a game extension."""
    name = text(value).strip()
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"{value!r} is not an extension name")
    return name


NODE_KEYS = [
    # Listening --------------------------------------------------------------
    Key("tcp", 4000, "TCP port for players (used when no --listen is given).",
        integer(0, 65535), short="t"),
    Key("listen", [], "Endpoint for players, e.g. tcp:4000, "
        "ssl:4443:privateKey=key.pem, systemd:domain=INET:index=0.",
        endpoint, repeat=True),
    Key("listen_backlog", 4096, "Connections the kernel queues on each player "
        "listener until the node accepts them, so that a login storm waits instead "
        "of being dropped: --tcp, and tcp:, tcp6:, ssl: and unix: --listen endpoints "
        "without a backlog= of their own. The kernel caps it at net.core.somaxconn.",
        integer(1, 1 << 20)),
    Key("session_hub", True, "Poll the players' plain TCP sockets through one epoll "
        "that the reactor reads as one descriptor, instead of one reactor event per "
        "socket (Linux; fewer instructions per player). Off: Twisted's own dispatch for each "
        "socket. TLS and WebSocket connections always take Twisted's.",
        boolean, flag=True),
    Key("node_id", "", "This node's id in the cluster (default: HOSTNAME-PID).",
        text),
    Key("data_dir", "mmo-data", "Directory for the node's state (cluster key, "
        "database).", text),
    # Browsers ---------------------------------------------------------------
    Key("websocket", [], "Endpoint for players over WebSocket (browsers, the web "
        "client at /play), e.g. tcp:4080 or ssl:4443:privateKey=key.pem:certKey=cert.pem; "
        "a bare number is a TCP port. Off unless given.", websocket_endpoint, repeat=True),
    Key("allowed_origin", [], "Origin whose pages may connect over WebSocket, e.g. "
        "https://play.example.com (* matches anything). Default: pages of the host "
        "name the browser connected to (the node's own /play page). Clients that send "
        "no Origin (not browsers) are always let in.", origin_pattern, repeat=True),
    Key("websocket_url", "", "Address the web client at /play connects to (default: "
        "ws://HOST:PORT/ with the page's host name and the first --websocket port; set "
        "it behind a proxy).", text),
    Key("websocket_ping", 20.0, "Seconds between keepalive pings on WebSocket "
        "connections; one that does not answer within as long again is dropped (0: no "
        "pings).", number(0, 3600)),
    # World ------------------------------------------------------------------
    Key("tick_rate", 10.0, "Simulation ticks per second (the configured rate; the "
        "measured one is tick_hz in the metrics).", number(1, 120), aliases=("tick_hz",)),
    Key("zone", ["world:2000x2000", "arena:500x500"],
        "A zone as NAME:WIDTHxHEIGHT; the first is where new players start.",
        zone, repeat=True),
    Key("cell_size", 100.0, "Area-of-interest radius: the side of a grid cell.",
        number(1, 100000)),
    Key("hysteresis", 25.0, "How far past a cell's edge an entity must go to "
        "change cell (no flicker on borders). Kept at least region_margin, it "
        "lets a node publish only the cells next to other nodes' land (each "
        "cell_size it falls short adds a row).", number(0, 100000)),
    Key("placement", "regions", "Which node simulates a player: regions (the owner "
        "of the region it stands in; a login elsewhere is sent there with a Redirect) "
        "or connection (whichever node the client reached).",
        choice("regions", "connection")),
    Key("spawn", "center", "Where a new player appears: center (near the zone's "
        "centre, so that players meet) or random (anywhere in the zone).",
        choice("center", "random")),
    Key("busy_cell", 32, "Movers in one cell from which, while ticks take most of "
        "their time, the cell's moves go out every other tick (degrade, not fall behind).",
        integer(1, 1_000_000)),
    Key("max_speed", 50.0, "Fastest a player may move, in units per second.",
        number(0.001, 1e6)),
    # Regions ----------------------------------------------------------------
    Key("region_cells", 5, "Side of a region in cells: each zone is cut into regions "
        "of REGION_CELLS x REGION_CELLS cells (the last row and column may be "
        "partial; a smaller zone is one region), each simulated by one node.",
        integer(1, 100_000)),
    Key("region_block", 2, "Side of a hashing block in regions: the regions of a "
        "block share an owner, so that a node's territory has fewer borders "
        "(1: every region hashed alone; larger blocks balance less evenly).",
        integer(1, 100_000)),
    Key("region_margin", 25.0, "How far, in world units, a player must go past "
        "its region's edge before it is handed to the next region's owner (no "
        "bouncing on borders); less than a region's side.", number(0, 1e6)),
    Key("region_map", [], "Pin regions to a node while it is live: ZONE=NODE "
        "(a whole zone), ZONE:RX,RY=NODE or ZONE:RX0-RX1,RY0-RY1=NODE, or a TOML "
        "table {\"world:0,0\" = \"node-a\"}; tried in order, so a second pin of "
        "the same region names a standby. Regions whose pinned nodes are all "
        "down are hashed among the live nodes.", region_pins, repeat=True),
    # Game extensions --------------------------------------------------------
    Key("extension", ["commands", "npcs"], "A game extension to enable, by name "
        "(found with twisted.plugin in mmo.plugins; see docs/EXTENDING.md).",
        extension_name, repeat=True),
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
    Key("login_failures_per_name", 5, "Failed logins of one name from one address "
        "within --login-failure-window before that name's logins from that address "
        "are refused (0: no limit); the same name from another address still gets in.",
        integer(0, 1_000_000)),
    Key("login_failure_window", 60.0, "Seconds a failed login is remembered.",
        number(1, 86400)),
    # Limits -----------------------------------------------------------------
    Key("max_frame", 16 * 1024, "Largest frame a client may send, in bytes.",
        integer(64, 16 * 1024 * 1024)),
    Key("max_players", 10_000, "Players this node accepts at once.",
        integer(1, 1_000_000)),
    Key("max_per_ip", 100, "Connections from one IP address (0: no limit); "
        "loopback addresses only with --limit-loopback.", integer(0, 1_000_000)),
    Key("limit_loopback", False, "Apply --max-per-ip to connections from this host's "
        "loopback addresses too (a load generator on this host is exempt otherwise).",
        boolean, flag=True),
    Key("login_timeout", 10.0, "Seconds a connection has to log in.",
        number(0.1, 3600)),
    Key("resume_window", 60.0, "Seconds a resume token is good for: a player whose "
        "connection dropped (or whose node stopped) comes back within this time, on any "
        "node of the cluster, with no password (tokens are renewed every third of it).",
        number(3.0, 3600)),
    Key("idle_timeout", 60.0, "Seconds without a frame before a logged-in "
        "player is disconnected.", number(0.1, 86400)),
    Key("move_rate", 30.0, "Moves per second a player may send (burst: "
        "five seconds of it).", number(0.1, 10000)),
    Key("chat_rate", 2.0, "Chat messages per second a player may send "
        "(burst: 5).", number(0.01, 1000)),
    Key("request_rate", 200.0, "Request budget of one connection, in cost units per "
        "second, over every kind of frame (a Move or Ping costs 1, a Chat 2, a Who or "
        "ChangeZone 20); past it the connection is read no further until the budget "
        "refills.", number(1, 1_000_000)),
    Key("request_burst", 400.0, "Cost units one connection may spend at once.",
        number(20, 10_000_000)),
    Key("flood_timeout", 10.0, "Seconds a connection may stay over its request budget "
        "before it is disconnected.", number(0.1, 3600)),
    Key("output_buffer", 256 * 1024, "Unsent bytes a session may hold before "
        "it gets no more updates until it drains.", integer(4096, 1 << 30)),
    Key("stuck_timeout", 10.0, "Seconds a session may stay undrained before "
        "it is disconnected.", number(0.1, 3600)),
    Key("shutdown_grace", 2.0, "Seconds given to clients to read the shutdown "
        "notice before their connections are closed.", number(0, 300)),
    # Operations -------------------------------------------------------------
    Key("http", DEFAULT_HTTP, "Endpoint for HTTP /metrics, "
        "/healthz and /readyz; none turns it off.", http_endpoint),
    # Cluster: last, from mmo.cluster_settings ---------------------------------
    *CLUSTER_KEYS,
]

NODE_SCHEMA = Schema(NODE_KEYS)


def node_schema(makers: Mapping[str, Any] = MappingProxyType({})) -> Schema:
    """The node's keys and those the extension ``makers`` declare (``--npcs``)."""
    keys = list(NODE_KEYS)
    owner: dict[str, str] = {}
    for name, maker in makers.items():
        for key in getattr(maker, "keys", ()):
            if key.name in NODE_SCHEMA.keys or key.name in owner:
                raise ConfigError(f"extension {name!r} declares the key {key.name!r}, "
                                  f"which {owner.get(key.name, 'the node')} already has")
            owner[key.name] = name
            keys.append(key)
    return Schema(keys)


# -- typed settings ------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSettings:
    """The node: who it is, where it listens, its world and tick."""

    node_id: str
    data_dir: str
    tcp: int
    listen: tuple[str, ...]
    listen_backlog: int
    session_hub: bool
    tick_rate: float
    zones: tuple[ZoneSpec, ...]
    cell_size: float
    hysteresis: float
    spawn: str
    placement: str
    busy_cell: int
    max_speed: float

    @property
    def tick_interval(self) -> float:
        """Seconds between ticks at the configured rate."""
        return 1.0 / self.tick_rate

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Where players connect: the ``listen`` endpoints, or ``tcp:TCP``."""
        return self.listen or (f"tcp:{self.tcp}",)

    @property
    def listen_endpoints(self) -> tuple[str, ...]:
        """:attr:`endpoints` as listened on: with ``listen_backlog`` where it applies."""
        return tuple(with_backlog(e, self.listen_backlog) for e in self.endpoints)


@dataclass(frozen=True)
class LimitSettings:
    """What one connection may cost, and the login failure limits."""

    max_frame: int
    max_players: int
    max_per_ip: int
    limit_loopback: bool
    login_timeout: float
    resume_window: float
    idle_timeout: float
    move_rate: float
    chat_rate: float
    request_rate: float
    request_burst: float
    flood_timeout: float
    output_buffer: int
    stuck_timeout: float
    shutdown_grace: float
    login_failures_per_ip: int
    login_failures_per_name: int
    login_failure_window: float


@dataclass(frozen=True)
class StoreSettings:
    """Accounts and player state."""

    db: str
    data_dir: str
    open_registration: bool
    password_iterations: int
    autosave: float
    save_timeout: float
    presence_ttl: float


@dataclass(frozen=True)
class HttpSettings:
    """``/metrics``, ``/healthz`` and ``/readyz``."""

    #: An endpoint string, or ``"none"``.
    endpoint: str

    @property
    def enabled(self) -> bool:
        return self.endpoint != "none"


@dataclass(frozen=True)
class WebSocketSettings:
    """Players over WebSocket, and the web client's address."""

    #: Endpoint strings; empty: no WebSocket listener.
    endpoints: tuple[str, ...] = ()
    #: Origin patterns; empty: pages of the host name connected to.
    allowed_origins: tuple[str, ...] = ()
    #: The address the web client connects to; empty: made from the request.
    url: str = ""
    #: Seconds between keepalive pings (and to answer one); 0: none.
    ping: float = 20.0
    #: The kernel's queue of each listener (the node's ``listen_backlog``).
    backlog: int = 4096

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)

    @property
    def listen_endpoints(self) -> tuple[str, ...]:
        """:attr:`endpoints` as listened on: with ``backlog`` where it applies."""
        return tuple(with_backlog(e, self.backlog) for e in self.endpoints)


@dataclass(frozen=True)
class RegionSettings:
    """How zones are cut into regions and which node owns each (:mod:`mmo.world.regions`)."""

    #: A region's side, in cells.
    cells: int = 5
    #: A hashing block's side, in regions.
    block: int = 2
    #: World units past a region's edge before a player changes owner.
    margin: float = 25.0
    #: Pins, in the order they are tried.
    pins: tuple[RegionPin, ...] = ()

    def layout(self, node: NodeSettings) -> RegionLayout:
        """The regions of ``node``'s zones."""
        return RegionLayout(node.zones, node.cell_size, self.cells, self.block)

    @classmethod
    def build(cls, values: Mapping[str, Any], node: NodeSettings) -> RegionSettings:
        """The region settings of checked ``values``, checked against ``node``'s zones."""
        pins = tuple(p for group in values["region_map"] for p in group)
        regions = cls(values["region_cells"], values["region_block"],
                      values["region_margin"], pins)
        side = regions.cells * node.cell_size
        if regions.margin >= side:
            raise ConfigError(f"--region-margin {regions.margin:g} must be less than a "
                              f"region's side ({regions.cells} cells of {node.cell_size:g}: "
                              f"{side:g})")
        try:
            regions.layout(node).check_pins(pins)
        except ValueError as e:
            raise ConfigError(f"--region-map: {e}") from None
        return regions


@dataclass(frozen=True)
class Settings:
    """Everything a node is configured with, by concern."""

    node: NodeSettings
    limits: LimitSettings
    store: StoreSettings
    http: HttpSettings
    cluster: ClusterSettings
    #: The enabled extensions, in order: name -> its own settings (or ``None``).
    extensions: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    regions: RegionSettings = field(default_factory=RegionSettings)

    @classmethod
    def build(cls, values: Mapping[str, Any],
              makers: Mapping[str, Any] = MappingProxyType({})) -> Settings:
        """
        The settings of checked ``values`` (the node's keys and the extension
        ``makers``' keys); raise :class:`ConfigError` for what no single key
        can say: an unknown extension, an extension's key set while that
        extension is off, an extension's own cross-key checks.
        """
        names = list(dict.fromkeys(values["extension"]))
        unknown = [n for n in names if n not in makers]
        if unknown:
            raise ConfigError(
                f"--extension: unknown extension {', '.join(map(repr, unknown))}; "
                "found: " + (", ".join(sorted(makers)) or "none"))
        for name, maker in makers.items():
            if name not in names:
                for key in getattr(maker, "keys", ()):
                    if key.name in values and not is_default(values[key.name], key):
                        raise ConfigError(f"--{key.option} needs the {name} extension "
                                          f"(--extension {name})")
        cluster = ClusterSettings.build(values)
        own = {name: makers[name].configure(values) for name in names}
        node = build(NodeSettings, values, zones="zone")
        return cls(
            node=node,
            limits=build(LimitSettings, values),
            store=build(StoreSettings, values),
            http=HttpSettings(values["http"]),
            cluster=cluster,
            extensions=MappingProxyType(own),
            websocket=WebSocketSettings(
                tuple(values["websocket"]), tuple(values["allowed_origin"]),
                values["websocket_url"], values["websocket_ping"], values["listen_backlog"]),
            regions=RegionSettings.build(values, node),
        )


def is_default(value: Any, key: Key) -> bool:
    """Whether ``value`` is ``key``'s default (a key left alone)."""
    default = key.default
    if key.repeat:
        try:
            default = [key.parse(v) for v in default]
        except (ValueError, TypeError):
            return False
        return list(value) == default
    return bool(value == default)
