"""
Configuration keys, shared by the TOML file and the command line.

Every key is a flag (``tick_hz`` is ``--tick-hz``) and a TOML key; flags win
over the file, the file over the defaults.  Values are checked when the
process starts: an unknown key or a bad value is a :class:`ConfigError`
with a sentence that names the key, never a traceback.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from .world.grid import ZoneSpec


class ConfigError(ValueError):
    """A configuration value or file is wrong; the text says which and why."""


T = TypeVar("T")


def frozen(value: Any) -> Any:
    """``value`` with its lists made tuples (settings objects are immutable)."""
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    return value


def build(cls: type[T], values: Mapping[str, Any], **keys: str) -> T:
    """
    The dataclass ``cls`` from checked ``values``: each field takes the key
    of its own name, or the key ``keys`` maps it to (``zones="zone"``).
    """
    return cls(**{f.name: frozen(values[keys.get(f.name, f.name)])  # type: ignore[call-arg]
                  for f in fields(cls) if f.init})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Key:
    """One configuration key: its name, parser, default and help text."""

    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any]
    repeat: bool = False
    flag: bool = False
    short: str | None = None
    #: Older names of the key, still accepted in files and as flags.
    aliases: tuple[str, ...] = ()

    @property
    def option(self) -> str:
        return self.name.replace("_", "-")


def integer(low: int | None = None, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("expected an integer")
        n = int(value)
        if low is not None and n < low:
            raise ValueError(f"must be at least {low}")
        if high is not None and n > high:
            raise ValueError(f"must be at most {high}")
        return n

    return parse


def number(low: float | None = None, high: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        x = float(value)
        if x != x or x in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        if low is not None and x < low:
            raise ValueError(f"must be at least {low:g}")
        if high is not None and x > high:
            raise ValueError(f"must be at most {high:g}")
        return x

    return parse


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def choice(*allowed: str) -> Callable[[Any], str]:
    """A parser for one of the ``allowed`` words."""

    def parse(value: Any) -> str:
        value = text(value)
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def ipv4(value: Any) -> str:
    value = text(value)
    try:
        socket.inet_aton(value)
    except OSError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None
    if value.count(".") != 3:
        raise ValueError(f"{value!r} is not a dotted IPv4 address")
    return value


def multicast_group(value: Any) -> str:
    value = ipv4(value)
    first = int(value.split(".")[0])
    if not 224 <= first <= 239:
        raise ValueError(f"{value} is not a multicast address (224.0.0.0/4)")
    return value


def group_or_auto(value: Any) -> str:
    """``auto`` or a multicast group address."""
    return "auto" if value == "auto" else multicast_group(value)


def zone(value: Any) -> ZoneSpec:
    if isinstance(value, ZoneSpec):
        return value
    if isinstance(value, Mapping):
        try:
            value = f"{value['name']}:{value['width']}x{value['height']}"
        except KeyError as e:
            raise ValueError(f"a zone table needs name, width and height (no {e})") from None
    return ZoneSpec.parse(text(value))


def endpoint(value: Any) -> str:
    value = text(value)
    if ":" not in value:
        raise ValueError(f"{value!r} is not an endpoint string such as tcp:4000")
    return value


#: Redis's port when a URL names none.
REDIS_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    """Where a Redis (or Valkey) server is, from a ``redis://`` or ``rediss://`` URL."""

    host: str
    port: int = REDIS_PORT
    db: int = 0
    tls: bool = False
    #: An ACL user (Redis 6+), or ``""`` for the default user.
    username: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        return f"{'rediss' if self.tls else 'redis'}://{user}{host}:{self.port}/{self.db}"


def parse_redis_url(value: str) -> RedisAddress:
    """
    ``redis://[USER@]HOST[:PORT][/DB]`` (``rediss://`` for TLS) as a
    :class:`RedisAddress`.  A password in the URL is refused: command lines
    and config files are read by too many, so it comes from a file.
    """
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError as e:
        raise ValueError(f"{value!r} is not a Redis URL: {e}") from None
    if url.scheme not in ("redis", "rediss"):
        raise ValueError(f"{value!r} is not a redis:// or rediss:// URL")
    if url.password is not None:
        raise ValueError("the Redis URL holds a password: put it in a file given "
                         "with --redis-password-file instead")
    if not url.hostname:
        raise ValueError(f"{value!r} names no host (redis://HOST:PORT/DB)")
    if url.query or url.fragment:
        raise ValueError(f"{value!r}: a Redis URL here takes no ?options or #fragment")
    path = url.path.strip("/")
    if path and not re.fullmatch(r"\d{1,9}", path):
        raise ValueError(f"{value!r}: the database must be a number (redis://HOST:PORT/0)")
    return RedisAddress(url.hostname, port or REDIS_PORT, int(path or 0),
                        url.scheme == "rediss", unquote(url.username or ""))


def redis_url(value: Any) -> str:
    """``""`` (no Redis: multicast) or a Redis URL that :func:`parse_redis_url` takes."""
    value = text(value).strip()
    if value:
        parse_redis_url(value)
    return value


def cluster_name(value: Any) -> str:
    """A cluster's name on Redis: letters, digits, ``.``, ``_`` and ``-``."""
    value = text(value)
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise ValueError(f"{value!r} is not a cluster name (1 to 64 letters, digits, "
                         "'.', '_' or '-')")
    return value


#: Endpoint types whose listen backlog their string sets with ``backlog=``.
BACKLOG_ENDPOINTS = ("tcp", "tcp6", "ssl", "unix")


def endpoint_fields(description: str) -> list[str]:
    """The ``:``-separated fields of an endpoint string (``\\:`` is no separator)."""
    fields_: list[str] = []
    current: list[str] = []
    escaped = False
    for c in description:
        if escaped:
            current.append(c)
            escaped = False
        elif c == "\\":
            current.append(c)
            escaped = True
        elif c == ":":
            fields_.append("".join(current))
            current = []
        else:
            current.append(c)
    fields_.append("".join(current))
    return fields_


def with_backlog(description: str, backlog: int) -> str:
    """
    ``description`` with ``:backlog=BACKLOG`` added when its type takes a
    backlog (:data:`BACKLOG_ENDPOINTS`) and it gives none of its own.
    """
    kind, *rest = endpoint_fields(description)
    if kind.strip().lower() not in BACKLOG_ENDPOINTS:
        return description
    if any(f.partition("=")[0].strip() == "backlog" for f in rest if "=" in f):
        return description
    return f"{description}:backlog={backlog}"


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Schema:
    """An ordered set of :class:`Key` objects and the merging rules."""

    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = {k.name: k for k in keys}
        #: old name -> the key's name
        self.aliases = {a: k.name for k in keys for a in k.aliases}

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys.values())

    def check(self, name: str, value: Any, origin: str) -> Any:
        key = self.keys.get(self.aliases.get(name, name))
        if key is None:
            raise ConfigError(f"{origin}: unknown key {name!r}")
        try:
            if key.repeat:
                if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
                    value = [value]
                return [key.parse(v) for v in value]
            return key.parse(value)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{origin}: bad value for {name!r}: {e}") from None

    def load_file(self, path: str) -> dict[str, Any]:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
        return self.from_mapping(raw, f"config file {path}")

    def from_mapping(self, raw: Mapping[str, Any], origin: str) -> dict[str, Any]:
        out = {}
        for name, value in raw.items():
            name = name.replace("-", "_")
            value = self.check(name, value, origin)
            out[self.aliases.get(name, name)] = value
        return out

    def resolve(self, given: Mapping[str, Any], path: str | None) -> dict[str, Any]:
        """Defaults, then the file at ``path``, then the flags in ``given``."""
        values = {k.name: self.check(k.name, k.default, "default") for k in self}
        if path:
            values.update(self.load_file(path))
        values.update(given)
        return values


def toml_value(value: Any) -> str:
    """``value`` written as a TOML literal (the types configuration uses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def sample_toml(schema: Schema, title: str) -> str:
    """A TOML file that sets every key of ``schema`` to its default, with help."""
    import textwrap

    lines = [f"# {title}", "#", "# Every key is also a command-line flag (tick_hz is --tick-hz);",
             "# flags win over this file. Generated from the schema: keep in step.", ""]
    for key in schema:
        for line in textwrap.wrap(key.help, 76):
            lines.append(f"# {line}")
        default = [str(v) for v in key.default] if key.repeat else key.default
        lines.append(f"{key.name} = {toml_value(default)}")
        lines.append("")
    return "\n".join(lines)
