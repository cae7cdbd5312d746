"""
The window's start-up: the QApplication first, then qt5reactor, then the
reactor and everything that uses it; ``--screenshot`` and ``--json``.
"""

from __future__ import annotations

import sys
from typing import Any

from PyQt5.QtWidgets import QApplication


def run_window(values: dict[str, Any], model: Any) -> int:
    """Open the window and run the reactor until it closes; return the exit code."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    import qt5reactor

    qt5reactor.install()
    from twisted.internet import reactor

    from mmo.monitor.listener import MonitorService
    from mmo.monitor.text import write_json

    from .window import MonitorWindow

    r: Any = reactor
    window = MonitorWindow(model, values)
    service = MonitorService(model, values, r)
    service.views.append(window.refresh)
    outcome = {"code": 0}

    if values["json"]:
        # At every redraw (twice a second), so that short states are seen.
        service.views.append(lambda now: write_json(values["json"], window.shown()))

    def screenshot() -> None:
        path = values["screenshot"]
        service.refresh()
        app.processEvents()
        if not window.grab().save(path, "PNG"):
            print(f"mmo-monitor: cannot write {path}", file=sys.stderr)
            outcome["code"] = 1
        else:
            write_json(f"{path}.json", window.shown())
        r.stop()

    def stop() -> None:
        if r.running:
            r.stop()

    window.show()
    app.lastWindowClosed.connect(stop)
    r.callWhenRunning(service.startService)
    r.addSystemEventTrigger("before", "shutdown", service.stopService)
    if values["screenshot"]:
        r.callLater(values["after"], screenshot)
    if values["duration"]:
        r.callLater(values["duration"], stop)
    r.run()
    window.close()
    return outcome["code"]
