"""
The load generator's keys (each is a TOML key and a flag of ``mmo-loadgen``)
and :class:`LoadgenSettings`, the typed settings made from them once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..config import Key, Schema, boolean, choice, integer, number, text


def target_list(value: Any) -> list[tuple[str, int]]:
    """``host:port,host:port`` (or a TOML list of them) as ``(host, port)`` pairs."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = [text(v).strip() for v in value]
    else:
        raise ValueError("expected host:port,host:port")
    out = []
    for item in items:
        host, sep, port = item.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{item!r} is not host:port")
        out.append((host, integer(1, 65535)(port)))
    return out


def spread(value: Any) -> str:
    value = text(value)
    if value not in SPREADS:
        raise ValueError(f"{value!r} is not one of {', '.join(SPREADS)}")
    return value


def worker_slot(value: Any) -> str:
    value = text(value)
    if value:
        index, sep, count = value.partition("/")
        if not sep or not index.isdigit() or not count.isdigit() \
                or not 0 <= int(index) < int(count):
            raise ValueError(f"{value!r} is not INDEX/COUNT")
    return value


SPREADS = ("spawn", "uniform")

LOADGEN_KEYS = [
    Key("host", "127.0.0.1", "Node to connect to (when no --targets).", text, short="H"),
    Key("port", 4000, "Port of --host (a --websocket port with --transport ws).",
        integer(1, 65535), short="p"),
    Key("transport", "tcp", "How bots connect: tcp (the node's --tcp/--listen port) or ws "
        "(a --websocket port of the node, as browsers do: one frame per binary "
        "message); --port and --targets then name WebSocket ports.", choice("tcp", "ws")),
    Key("targets", "", "host:port,host:port...: spread the bots over these nodes "
        "(bot i goes to target i mod N); overrides --host/--port.", target_list),
    Key("clients", 100, "Bots to run.", integer(1, 1_000_000), short="n"),
    Key("rate", 10.0, "Moves per second each bot sends.", number(0, 1000), short="r"),
    Key("ramp", 100.0, "New connections per second (all workers together).",
        number(0.01, 1e6)),
    Key("duration", 120.0, "Seconds from start to stop; then every connection is "
        "closed and the process exits.", number(0.1, 1e7), short="d"),
    Key("zone", "", "Zone the bots go to after login (default: where the node "
        "puts them).", text),
    Key("spread", "spawn", "How bots are placed: spawn (random walk from where the "
        "node spawns them, a crowd) or uniform (each first walks to a random point "
        "of the zone).", spread),
    Key("speed", 40.0, "Walking speed in units per second; keep it under the "
        "node's --max-speed (default 50).", number(0, 1e6)),
    Key("chat_rate", 0.1, "Chat lines per second each bot says (on average).",
        number(0, 100)),
    Key("ping_interval", 1.0, "Seconds between a bot's pings (RTT).",
        number(0.05, 3600)),
    Key("workers", 1, "Processes to spread the bots over (to use several cores).",
        integer(1, 256), short="w"),
    Key("report", "", "Write the JSON report to this file.", text),
    Key("seed", 0, "Random seed; 0 picks one (the report says which).",
        integer(0, 2**63)),
    Key("max_failures", 0, "Bots that may fail before the exit code is non-zero.",
        integer(0, 1_000_000)),
    Key("name_prefix", "bot", "Bot names are PREFIX0, PREFIX1, ...", text),
    Key("password", "bot", "Password of every bot.", text),
    Key("come_back", "token", "What a bot does when the node sends it elsewhere (a "
        "Redirect: always followed) or its connection drops or the node stops: token "
        "(come back with its resume token, retrying while no node answers), password "
        "(log in again with the password) or off (the bot ends).",
        choice("token", "password", "off")),
    Key("connect_timeout", 10.0, "Seconds a connection attempt may take.",
        number(0.1, 3600)),
    Key("login_timeout", 90.0, "Seconds from connection to entering the world (a "
        "login storm queues behind the node's password hashes, which it checks for up "
        "to its own --login-timeout + 60 s).",
        number(0.1, 3600)),
    Key("drive_hz", 20.0, "How often the one timer that drives every bot runs.",
        number(1, 1000)),
    Key("progress", True, "Print a progress line every second.", boolean, flag=True),
    Key("worker", "", "Internal: run as worker INDEX/COUNT of a --workers run and "
        "print progress as JSON lines.", worker_slot),
]

LOADGEN_SCHEMA = Schema(LOADGEN_KEYS)


@dataclass(frozen=True)
class LoadgenSettings:
    """
    One load-generator run's settings: one field per key of
    :data:`LOADGEN_SCHEMA` (the flags' help says what each means), made by
    the options' ``make_settings`` with :func:`mmo.config.build`.
    """

    host: str
    port: int
    transport: str
    targets: tuple[tuple[str, int], ...]
    clients: int
    rate: float
    ramp: float
    duration: float
    zone: str
    spread: str
    speed: float
    chat_rate: float
    ping_interval: float
    workers: int
    report: str
    seed: int
    max_failures: int
    name_prefix: str
    password: str
    come_back: str
    connect_timeout: float
    login_timeout: float
    drive_hz: float
    progress: bool
    worker: str

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """The addresses the bots may connect to: ``targets``, else ``host:port``."""
        return self.targets or ((self.host, self.port),)

    def as_dict(self) -> dict[str, Any]:
        """Every key and its value, in the schema's order (for the report)."""
        return asdict(self)


def to_argv(settings: LoadgenSettings) -> list[str]:
    """Flags that give ``settings`` back (how a worker gets its parent's settings)."""
    argv: list[str] = []
    for key in LOADGEN_SCHEMA:
        value = getattr(settings, key.name)
        if key.name == "targets":
            value = ",".join(f"{h}:{p}" for h, p in value)
            if not value:
                continue
        if key.flag:
            argv.append(f"--{key.option}" if value else f"--no-{key.option}")
        elif value != "":
            argv += [f"--{key.option}", str(value)]
    return argv
