"""
``mmo-monitor``: the cluster in a window, or as text with ``--text``.

The flags are parsed before anything imports Qt or the reactor: the window
needs the QApplication created and qt5reactor installed first, and the text
view must run where PyQt5 is not installed at all.  Where the window cannot
open (no X display, or Qt's xcb plugin misses a library: Qt would abort the
process), one line says why and the text view runs instead.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mmo.config import ConfigError, build
from mmo.monitor.settings import MONITOR_SCHEMA, MonitorSettings
from mmo.options import SchemaOptions, options_for, parse_or_exit


class _MonitorOptions(SchemaOptions):
    synopsis = "[options]"
    longdesc = (
        "Watch an mmo cluster live: totals, a table of nodes (live, stale, gone), "
        "charts of the last minutes, a map of one zone with every entity coloured by "
        "the node that owns it and every region tinted by the node that owns it (as the "
        "nodes compute it from the live nodes: give the nodes' --region-cells, "
        "--region-block and --region-map), and an event log. It only listens to the "
        "multicast groups (no TCP, nothing sent). --text prints the same numbers each second "
        "instead of opening a window. Every option is also a key of the TOML file "
        "given with --config; flags win."
    )

    def make_settings(self, values: dict[str, Any]) -> MonitorSettings:
        if values["text"] and values["screenshot"]:
            raise ConfigError("--screenshot needs the window: drop --text")
        settings = build(MonitorSettings, values)
        try:
            settings.check_regions()
        except ValueError as e:
            raise ConfigError(f"--region-map: {e}") from None
        return settings


Options = options_for(MONITOR_SCHEMA, _MonitorOptions)


def parse(argv: list[str]) -> MonitorSettings:
    """The settings of ``argv``; exits with a usage message when wrong."""
    config = parse_or_exit(Options, argv, "mmo-monitor")
    settings: MonitorSettings = config.settings
    return settings


def start_logging(text_view: bool) -> None:
    """Log to stderr: everything for the window, warnings and worse beside the text view."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    level = LogLevel.warn if text_view else LogLevel.info
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(level)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def make_model(settings: MonitorSettings) -> Any:
    from mmo.monitor.model import ClusterModel

    return ClusterModel(settings.zone, settings.cell_size, settings.expiry,
                        settings.history, settings.forget_after, regions=settings.regions)


def run_text(settings: MonitorSettings, note: str = "") -> int:
    """The text view on the default reactor, until ``--duration`` or Ctrl-C."""
    from twisted.internet import reactor

    from mmo.monitor.listener import MonitorService
    from mmo.monitor.text import TextView

    model = make_model(settings)
    service = MonitorService(model, settings, reactor)
    service.views.append(TextView(model, json_path=settings.json, note=note))
    r: Any = reactor
    r.callWhenRunning(service.startService)
    r.addSystemEventTrigger("before", "shutdown", service.stopService)
    if settings.duration:
        r.callLater(settings.duration, r.stop)
    r.run()
    return 0


def main(argv: list[str] | None = None) -> None:
    settings = parse(sys.argv[1:] if argv is None else argv)
    if settings.text:
        start_logging(text_view=True)
        raise SystemExit(run_text(settings))
    try:
        from .app import run_window
    except ImportError as e:
        print(f"mmo-monitor: the window needs the gui extra (pip install 'mmo[gui]'): {e}\n"
              "mmo-monitor: --text shows the same numbers without Qt", file=sys.stderr)
        raise SystemExit(1) from None
    from .xcb import window_problem

    problem = window_problem()
    if problem and settings.screenshot:
        print(f"mmo-monitor: no window for --screenshot: {problem}", file=sys.stderr)
        raise SystemExit(1)
    if problem:
        print(f"mmo-monitor: no window: {problem}; showing the text view", file=sys.stderr)
        sys.stderr.flush()
        start_logging(text_view=True)
        raise SystemExit(run_text(settings, note=f"no window: {problem}"))
    start_logging(text_view=False)
    code = run_window(settings, make_model(settings))
    # Python's teardown of Qt and pyqtgraph objects can crash after a clean
    # run (their C++ halves go in the wrong order): everything is written
    # and closed by now, so leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
