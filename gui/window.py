"""
The monitor's main window: cluster totals, the node table, live charts, the
map of one zone and the event log, all drawn from :mod:`mmo.monitor.present`.

The window owns no state of its own: :meth:`MonitorWindow.refresh` redraws
it from the model, and :meth:`MonitorWindow.shown` reads back what the
widgets display (for ``--screenshot`` and the tests).
"""

from __future__ import annotations

import html
import time
from typing import Any, TypeVar

import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor, QFont, QGuiApplication, QPainterPath
from PyQt5.QtWidgets import (
    QFrame,
    QGraphicsPathItem,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mmo.monitor import present
from mmo.monitor.model import ClusterModel
from mmo.monitor.settings import MonitorSettings

#: Columns of the table that hold numbers (right-aligned).
NUMERIC = present.NUMERIC
STATE_COLUMN = len(present.COLUMNS) - 1


class Card(QFrame):
    """A number and its label in the totals bar."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.setObjectName("card")
        self.setStyleSheet("#card { background: #f4f6f8; border: 1px solid #d0d7de; "
                           "border-radius: 6px; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 6)
        layout.setSpacing(0)
        self.value = QLabel("-")
        font = QFont()
        font.setPointSize(17)
        font.setBold(True)
        self.value.setFont(font)
        self.caption = QLabel(label)
        self.caption.setStyleSheet("color: #57606a;")
        layout.addWidget(self.value)
        layout.addWidget(self.caption)


class Charts(pg.GraphicsLayoutWidget):
    """Players, events/s, tick time and bandwidth of the last minutes, per node."""

    def __init__(self) -> None:
        super().__init__()
        self.setBackground("w")
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        for i, (name, (title, unit)) in enumerate(present.CHARTS.items()):
            plot = self.addPlot(row=i // 2, col=i % 2, title=title)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setLabel("bottom", "seconds")
            if unit:
                plot.setLabel("left", units=unit)
            plot.setMouseEnabled(x=False, y=False)
            plot.enableAutoRange()
            plot.setLimits(yMin=0)
            self.plots[name] = plot
        self.legend = self.plots["players"].addLegend(offset=(-5, -5))

    def refresh(self, model: ClusterModel, now: float) -> None:
        colours = present.node_colours(model)
        for name, plot in self.plots.items():
            data = present.series(model, name, now)
            for key in [k for k in self.curves if k[0] == name and k[1] not in data]:
                plot.removeItem(self.curves.pop(key))
                if name == "players":
                    self.legend.removeItem(key[1])
            for node_id, (xs, ys) in data.items():
                curve = self.curves.get((name, node_id))
                if curve is None:
                    if node_id == "total":
                        pen = pg.mkPen("#222222", width=2, style=Qt.PenStyle.DashLine)
                        label = "worst" if name == "tick_ms_p99" else "total"
                    else:
                        pen = pg.mkPen(colours.get(node_id, "#888888"), width=2)
                        label = node_id
                    curve = plot.plot(name=label if name == "players" else None, pen=pen)
                    self.curves[(name, node_id)] = curve
                curve.setData(xs, ys)

    def points(self) -> dict[str, int]:
        """Points drawn on each chart."""
        out: dict[str, int] = {}
        for (name, _node), curve in self.curves.items():
            xs, _ys = curve.getData()
            out[name] = out.get(name, 0) + (0 if xs is None else len(xs))
        return out


class ZoneMap(pg.PlotWidget):
    """
    Every entity of one zone as a dot coloured by the node that owns it,
    over the zone's regions tinted with the colour of the node that owns
    each (one outlined path of rectangles per owner, redrawn only when
    owners change).
    """

    def __init__(self, model: ClusterModel) -> None:
        super().__init__(background="w")
        spec = model.zone_spec
        self.spec = spec
        plot = self.getPlotItem()
        plot.setAspectLocked(True)
        plot.invertY(True)
        plot.setMouseEnabled(x=True, y=True)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.setXRange(0, spec.width, padding=0.02)
        plot.setYRange(0, spec.height, padding=0.02)
        border = pg.QtWidgets.QGraphicsRectItem(0, 0, spec.width, spec.height)
        border.setPen(pg.mkPen("#8c959f", width=1))
        plot.addItem(border)
        self.legend = plot.addLegend(offset=(-5, 5))
        self.items: dict[tuple[str, bool], pg.ScatterPlotItem] = {}
        #: Owner -> the path of its regions' rectangles.
        self.regions: dict[str, QGraphicsPathItem] = {}
        self._regions_drawn: tuple[int, tuple[tuple[str, str], ...]] | None = None
        self._set_title(0)

    def _set_title(self, players: int, npcs: int = 0) -> None:
        self.getPlotItem().setTitle(
            f"zone {self.spec.name} ({self.spec.width:g} \u00d7 {self.spec.height:g}): "
            f"{players:,} players" + (f", {npcs:,} NPCs" if npcs else ""))

    def refresh(self, model: ClusterModel) -> None:
        colours = present.node_colours(model)
        plot = self.getPlotItem()
        self._refresh_regions(model, colours)
        drawn: set[tuple[str, bool]] = set()
        for npcs in (True, False):  # players on top
            for node_id, points in sorted(present.dots_by_node(model, npcs).items()):
                key = (node_id, npcs)
                drawn.add(key)
                item = self.items.get(key)
                if item is None:
                    colour = colours.get(node_id, "#888888")
                    if npcs:
                        item = pg.ScatterPlotItem(size=5, symbol="t", pen=pg.mkPen(None),
                                                  brush=pg.mkBrush(colour + "80"))
                    else:
                        item = pg.ScatterPlotItem(size=6, pen=pg.mkPen(None),
                                                  brush=pg.mkBrush(colour), name=node_id)
                    plot.addItem(item)
                    self.items[key] = item
                item.setData(pos=points)
        for key in [k for k in self.items if k not in drawn]:
            plot.removeItem(self.items.pop(key))
            if not key[1]:
                self.legend.removeItem(key[0])
        counts = self.counts()
        self._set_title(sum(counts.values()), sum(self.counts(npcs=True).values()))

    def _refresh_regions(self, model: ClusterModel, colours: dict[str, str]) -> None:
        """Redraw the regions when their owners (or the owners' colours) changed."""
        view = model.regions
        key = (view.version, tuple(sorted((n, colours.get(n, "")) for n in view.nodes)))
        if key == self._regions_drawn:
            return
        self._regions_drawn = key
        plot = self.getPlotItem()
        for item in self.regions.values():
            plot.removeItem(item)
        self.regions.clear()
        paths: dict[str, QPainterPath] = {}
        for (x0, y0, x1, y1), owner, colour in present.regions(model):
            path = paths.get(owner)
            if path is None:
                path = paths[owner] = QPainterPath()
                item = self.regions[owner] = QGraphicsPathItem()
                fill = QColor(colour)
                fill.setAlpha(present.REGION_ALPHA)
                item.setBrush(pg.mkBrush(fill))
                item.setPen(pg.mkPen(colour, width=1))
                # Under the zone's border and the dots.
                item.setZValue(-10)
                # Painted again only when the view moves, not as the dots do.
                item.setCacheMode(QGraphicsPathItem.CacheMode.DeviceCoordinateCache)
            path.addRect(x0, y0, x1 - x0, y1 - y0)
        for owner, item in self.regions.items():
            item.setPath(paths[owner])
            plot.addItem(item)

    def drawn_regions(self) -> dict[str, dict[str, Any]]:
        """
        Read back from the items on the plot: each owner's region rectangles
        ``(x0, y0, x1, y1)``, their tint and alpha, and their border colour.
        """
        on_plot = set(self.getPlotItem().items)
        out = {}
        for owner, item in self.regions.items():
            if item not in on_plot:
                continue
            rects = []
            for polygon in item.path().toSubpathPolygons():
                r = polygon.boundingRect()
                rects.append((r.left(), r.top(), r.right(), r.bottom()))
            fill = item.brush().color()
            out[owner] = {"rects": rects, "colour": fill.name(), "alpha": fill.alpha(),
                          "border": item.pen().color().name()}
        return out

    def counts(self, npcs: bool = False) -> dict[str, int]:
        """Dots drawn, by node: players, or NPCs."""
        return {node_id: len(item.data) for (node_id, is_npc), item in self.items.items()
                if is_npc == npcs}


class MonitorWindow(QMainWindow):
    """The cluster at a glance."""

    def __init__(self, model: ClusterModel, settings: MonitorSettings) -> None:
        super().__init__()
        self.model = model
        self.settings = settings
        self.setWindowTitle(f"mmo monitor \u2014 {settings.mgroup}:{settings.mport}")
        self._events_shown = 0
        self._started_wall = time.time()
        self._started = 0.0

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 8, 8, 4)
        bar = QHBoxLayout()
        self.cards: dict[str, Card] = {}
        for label, _value in present.totals(model).items():
            card = self.cards[label] = Card(label)
            bar.addWidget(card)
        outer.addLayout(bar)

        self.table = QTableWidget(0, len(present.COLUMNS))
        self.table.setHorizontalHeaderLabels(present.COLUMNS)
        _present(self.table.verticalHeader()).setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.NoSelection)
        # Compact, so that every column fits beside the map.
        small = self.table.font()
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.table.setFont(small)
        self.table.setStyleSheet("QTableWidget::item { padding: 0px 2px; }")
        _present(self.table.verticalHeader()).setDefaultSectionSize(24)
        header = _present(self.table.horizontalHeader())
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        self.charts = Charts()
        self.map = ZoneMap(model)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(1000)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(self.table.font().pointSizeF())
        self.log_view.setFont(mono)

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(_titled("nodes", self.table))
        left.addWidget(self.charts)
        left.setSizes([170, 650])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.map)
        right.addWidget(_titled("events", self.log_view))
        right.setSizes([600, 220])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([985, 515])
        outer.addWidget(split, 1)
        self.setCentralWidget(central)
        self.resize(settings.width, settings.height)

    def refresh(self, now: float) -> None:
        """Redraw everything from the model at reactor time ``now``."""
        model = self.model
        if not self._started:
            self._started = now
            self._started_wall = time.time()
        for label, value in present.totals(model).items():
            self.cards[label].value.setText(value)
        t = present.totals(model)
        self.cards["auth failures"].value.setStyleSheet(
            "color: #b71c1c;" if t.auth_failures else "")
        worst = "gone" if t.gone else "stale" if t.stale else "live"
        nodes_colour = present.STATE_COLOURS[worst][0]
        self.cards["nodes"].value.setStyleSheet(f"color: {nodes_colour};")
        self._fill_table(present.rows(model, now))
        self.charts.refresh(model, now)
        self.map.refresh(model)
        self._append_events()
        c = model.counters
        _present(self.statusBar()).showMessage(
            f"listening on {self.settings.mgroup}:{self.settings.mport} via "
            f"{self.settings.iface}  \u00b7  {c.received:,} datagrams  \u00b7  "
            f"{c.auth_failures:,} failed authentication  \u00b7  {c.malformed:,} malformed"
            f"  \u00b7  {c.replays:,} replays"
            + (f"  \u00b7  {c.no_key:,} before the key was read" if c.no_key else ""))

    def _fill_table(self, rows: list[present.Row]) -> None:
        table = self.table
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            fg, bg = present.STATE_COLOURS[row.state]
            for col, text in enumerate(row.cells()):
                item = table.item(r, col)
                if item is None:
                    item = QTableWidgetItem()
                    table.setItem(r, col, item)
                item.setText(("\u25cf " + text) if col == 0 else text)
                item.setTextAlignment(
                    int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter) if col in NUMERIC
                    else int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter))
                item.setBackground(QColor(bg))
                font = item.font()
                font.setBold(col in (0, STATE_COLUMN))
                item.setFont(font)
                # A gone node's numbers are its last known ones: greyed.
                plain = "#8c959f" if row.state == "gone" else "#1f2328"
                item.setForeground(QColor(row.colour if col == 0 else
                                          fg if col == STATE_COLUMN else plain))

    def _append_events(self) -> None:
        model = self.model
        new = model.event_count - self._events_shown
        if new <= 0:
            return
        self._events_shown = model.event_count
        events = list(model.events)[-min(new, len(model.events)):]
        for e in events:
            wall = self._started_wall + (e.time - self._started)
            when = time.strftime("%H:%M:%S", time.localtime(wall))
            colour = present.EVENT_COLOURS.get(e.level, "#303030")
            self.log_view.appendHtml(
                f'<span style="color:#6e7781">{when}</span> '
                f'<span style="color:{colour}">{html.escape(e.text)}</span>')

    def shown(self) -> dict[str, Any]:
        """What the window displays now, read back from its widgets."""
        table = self.table
        nodes = []
        for r in range(table.rowCount()):
            cells = [_present(table.item(r, c)).text() for c in range(table.columnCount())]
            cells[0] = cells[0].removeprefix("\u25cf ")
            nodes.append(dict(zip(present.COLUMNS, cells, strict=True)))
        counts = self.map.counts()
        regions = self.map.drawn_regions()
        return {
            "size": [self.width(), self.height()],
            # xcb on an X screen; offscreen in the tests that have none.
            "platform": QGuiApplication.platformName(),
            "totals": {label: card.value.text() for label, card in self.cards.items()},
            "nodes": nodes,
            "row_colours": [_present(table.item(r, 0)).background().color().name()
                            for r in range(table.rowCount())],
            # Each node's own colour (its name's, its dots', its curves', its regions').
            "node_colours": {n["node"]: _present(table.item(r, 0)).foreground().color().name()
                             for r, n in enumerate(nodes)},
            "dots": {"total": sum(counts.values()), "by_node": counts,
                     "npcs": sum(self.map.counts(npcs=True).values())},
            "regions": {"total": sum(len(r["rects"]) for r in regions.values()),
                        "by_node": {n: len(r["rects"]) for n, r in regions.items()},
                        "colours": {n: r["colour"] for n, r in regions.items()}},
            "charts": self.charts.points(),
            "events": self.log_view.toPlainText().splitlines(),
            "status": _present(self.statusBar()).currentMessage(),
        }


T = TypeVar("T")


def _present(widget: T | None) -> T:
    """``widget``, which Qt's signatures allow to be None but is not here."""
    assert widget is not None
    return widget


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    label = QLabel(title)
    label.setStyleSheet("font-weight: bold; color: #57606a;")
    layout.addWidget(label)
    layout.addWidget(widget)
    return box
