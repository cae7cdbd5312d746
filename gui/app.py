"""
The window's start-up: the QApplication first, then qt5reactor, then the
reactor and everything that uses it; ``--screenshot`` and ``--json``.
"""

from __future__ import annotations

import sys
from typing import Any

from PyQt5.QtWidgets import QApplication

from mmo.monitor.settings import MonitorSettings


def run_window(settings: MonitorSettings, model: Any) -> int:
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
    window = MonitorWindow(model, settings)
    service = MonitorService(model, settings, r)
    service.views.append(window.refresh)
    outcome = {"code": 0}

    if settings.json:
        # At every redraw (twice a second), so that short states are seen.
        service.views.append(lambda now: write_json(settings.json, window.shown()))

    def screenshot() -> None:
        path = settings.screenshot
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
    if settings.screenshot:
        r.callLater(settings.after, screenshot)
    if settings.duration:
        r.callLater(settings.duration, stop)
    r.run()
    window.close()
    return outcome["code"]
