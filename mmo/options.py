"""
A ``twisted.python.usage.Options`` built from a configuration schema, so that
every key is a flag, ``--help`` shows every default, and ``--config FILE``
loads the same keys from TOML with flags winning.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.python import usage

from .config import ConfigError, Key, Schema


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if value is None or value == "":
        return "none"
    return str(value)


class SchemaOptions(usage.Options):
    """
    Options whose keys come from ``schema``.  After parsing, the merged,
    checked values are in ``self.checked`` (a dict, for the config code) and
    the typed settings made from them once by :meth:`make_settings` in
    ``self.settings``.  Make subclasses with :func:`options_for`.
    """

    schema: Schema
    config_flag = True

    def __init__(self) -> None:
        super().__init__()
        self._given: dict[str, Any] = {}
        self.checked: dict[str, Any] = {}
        self.settings: Any = None

    def opt_version(self) -> None:
        """Print the version and exit."""
        from . import __version__

        print(f"mmo {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        given: dict[str, Any] = dict(self._given)
        #: key name -> the flag it was given as (an old name says its own)
        flags = {name: name for name in given}
        for key in self.schema:
            if key.repeat:
                continue
            for alias in key.aliases:
                if self.get(alias.replace("_", "-")) is not None:
                    given[key.name] = self[alias.replace("_", "-")]
                    flags[key.name] = alias
            if key.flag:
                if self.get(f"no-{key.option}"):
                    given[key.name] = False
                elif self.get(key.option):
                    given[key.name] = True
            elif self.get(key.option) is not None:
                given[key.name] = self[key.option]
                flags[key.name] = key.name
        try:
            checked = {
                name: self.schema.check(name, value, f"--{flags.get(name, name).replace('_', '-')}")
                for name, value in given.items()
            }
            self.checked = self.schema.resolve(
                checked, self.get("config") if self.config_flag else None
            )
            self.settings = self.make_settings(self.checked)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None

    def make_settings(self, values: dict[str, Any]) -> Any:
        """The typed settings of ``values``; cross-key checks raise :class:`ConfigError`."""
        return values


def _repeat_handler(key: Key) -> Any:
    def handler(self: SchemaOptions, value: str) -> None:
        self._given.setdefault(key.name, []).append(value)

    handler.__doc__ = f"{key.help} Repeatable. (default: {_show(key.default)})"
    return handler


def options_for(
    schema: Schema, base: type[SchemaOptions] = SchemaOptions, **attrs: Any
) -> type[SchemaOptions]:
    """A :class:`SchemaOptions` subclass with one flag per key of ``schema``."""
    params: list[list[Any]] = []
    flags: list[list[Any]] = []
    namespace: dict[str, Any] = {"schema": schema}
    namespace.update(attrs)
    if namespace.get("config_flag", base.config_flag):
        params.append(["config", "c", None,
                       "TOML file with any of the keys below (flags win)."])
    for key in schema:
        if key.repeat:
            namespace["opt_" + key.option.replace("-", "_")] = _repeat_handler(key)
            continue
        helptext = f"{key.help} (default: {_show(key.default)})"
        if key.flag:
            flags.append([key.option, key.short, helptext])
            flags.append([f"no-{key.option}", None, f"Turn off --{key.option}."])
        else:
            params.append([key.option, key.short, None, helptext])
            for alias in key.aliases:
                params.append([alias.replace("_", "-"), None, None,
                               f"The old name of --{key.option}."])
    namespace["optParameters"] = params
    namespace["optFlags"] = flags
    return type(f"{base.__name__}For{len(schema.keys)}", (base,), namespace)


def parse_or_exit(options: type[usage.Options], argv: list[str], prog: str) -> Any:
    """Parse ``argv`` for a console script; on a usage error, say why and exit 2."""
    config = options()
    try:
        config.parseOptions(argv)
    except usage.UsageError as e:
        print(f"{config}\n{prog}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return config
