"""
The monitor as text: the same totals, node table, map counts and event log
as the window, printed once a second (for a terminal with no screen).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .model import ClusterModel
from .present import COLUMNS, NUMERIC, dots_by_node, rows, snapshot, totals

#: Event log lines printed under the table.
EVENT_TAIL = 6
CLEAR = "\x1b[H\x1b[2J"


def render(model: ClusterModel, now: float, wall: float | None = None, note: str = "") -> str:
    """One screen of text: ``note``, totals, the node table, the map's dots, recent events."""
    t = totals(model)
    stamp = time.strftime("%H:%M:%S", time.localtime(wall if wall is not None else time.time()))
    lines = [f"mmo monitor  {stamp}  zone {model.zone_spec}", *([note] if note else []),
             "  ".join(f"{label}: {value}" for label, value in t.items())]
    table = [COLUMNS] + [r.cells() for r in rows(model, now)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        lines.append("  ".join(cell.rjust(w) if i in NUMERIC else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip())
    if len(table) == 1:
        lines.append("(no node heard yet)")
    by_node = dots_by_node(model)
    lines.append("map: " + (", ".join(f"{node} {len(d):,}" for node, d in sorted(by_node.items()))
                            or "no players") + f"  (players {t.dots:,}, NPCs {t.npcs:,})")
    c = model.counters
    lines.append(f"datagrams: {c.received:,} received, {c.auth_failures:,} failed "
                 f"authentication, {c.malformed:,} malformed, {c.replays:,} replays"
                 + (f", {c.no_key:,} before the key was read" if c.no_key else ""))
    events = list(model.events)[-EVENT_TAIL:]
    if events:
        lines.append("events:")
        start = wall - now if wall is not None else time.time() - now
        for e in events:
            when = time.strftime("%H:%M:%S", time.localtime(start + e.time))
            lines.append(f"  {when} {e.text}")
    return "\n".join(lines) + "\n"


def write_json(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically (readers never see half)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


class TextView:
    """
    Prints :func:`render` every second; on a terminal, redraws in place
    (with ``note`` under the title, so that redrawing never wipes it).
    """

    def __init__(self, model: ClusterModel, write: Callable[[str], None] | None = None,
                 json_path: str = "", clear: bool | None = None, note: str = "") -> None:
        self.model = model
        self.note = note
        self.write = write or _stdout
        self.json_path = json_path
        self.clear = sys.stdout.isatty() if clear is None else clear
        self._last = -1e18

    def __call__(self, now: float) -> None:
        if now - self._last < 0.99:
            return
        self._last = now
        text = render(self.model, now, note=self.note)
        self.write((CLEAR if self.clear else "") + text + ("" if self.clear else "\n"))
        if self.json_path:
            write_json(self.json_path, snapshot(self.model, now))


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
