"""``mmo-loadgen``: the same load generator as ``twistd -n mmo-loadgen``."""

from __future__ import annotations

import sys
from typing import Any

from ..options import parse_or_exit


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, run until ``--duration``, exit with the run's code."""
    from .tap import Options

    config = parse_or_exit(Options, sys.argv[1:] if argv is None else argv, "mmo-loadgen")
    from twisted.internet import reactor

    from .run import LoadGenService

    service = LoadGenService(config.settings, reactor, write=_write)
    r: Any = reactor
    r.callWhenRunning(service.startService)
    # Ctrl-C or SIGTERM: the bots are closed and the report written first.
    r.addSystemEventTrigger("before", "shutdown", service.stopService)
    r.run()
    raise SystemExit(service.exit_code)


if __name__ == "__main__":
    main()
