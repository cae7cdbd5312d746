"""
``--workers K``: K child processes (this same program with ``--worker I/K``),
each running a slice of the bots.  Children print their progress as JSON
lines and write a report with their raw numbers; the parent merges both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .settings import LoadgenSettings, to_argv
from .stats import Interval, Stats


class WorkerProcess(ProcessProtocol):
    """One child: its progress lines in, its exit out."""

    log = Logger()

    def __init__(self, index: int, pool: WorkerPool) -> None:
        self.index = index
        self.pool = pool
        self.buffer = b""
        self.latest: dict[str, Any] | None = None
        self.exited: Deferred = Deferred()
        self.status: int | None = None

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                self.latest = json.loads(line)["progress"]
            except (ValueError, KeyError, TypeError):
                self.pool.write(f"[worker {self.index}] {line}")

    def errReceived(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                self.pool.write(f"[worker {self.index}] {line}")

    def processEnded(self, reason: Failure) -> None:
        self.status = getattr(reason.value, "exitCode", None)
        self.exited.callback(self.status)


class WorkerPool:
    """Runs ``--workers`` children and merges what they measure."""

    log = Logger()

    def __init__(self, settings: LoadgenSettings, reactor: Any, seed: int,
                 write: Callable[[str], None],
                 progress: Callable[[dict[str, Any]], None] | None) -> None:
        self.settings = settings
        self.reactor = reactor
        self.seed = seed
        self.write = write
        self.progress = progress
        self.count = settings.workers
        self.children: list[WorkerProcess] = []
        self.transports: list[Any] = []
        self.tmp = tempfile.mkdtemp(prefix="mmo-loadgen-")
        self.started_at = 0.0
        self._ticker = LoopingCall(self._each_second)
        self._ticker.clock = reactor

    def report_path(self, index: int) -> str:
        return os.path.join(self.tmp, f"worker-{index}.json")

    def start(self) -> Deferred:
        """Start the children; fire with the merged Stats when all have exited."""
        self.started_at = self.reactor.seconds()
        base = dataclasses.replace(self.settings, workers=1, seed=self.seed, progress=True)
        for i in range(self.count):
            child_settings = dataclasses.replace(
                base, worker=f"{i}/{self.count}", report=self.report_path(i))
            argv = [sys.executable, "-m", "mmo.loadgen.cli", *to_argv(child_settings)]
            child = WorkerProcess(i, self)
            self.children.append(child)
            self.transports.append(self.reactor.spawnProcess(
                child, sys.executable, argv, env=os.environ.copy()))
        self._ticker.start(1.0, now=False)
        d = gatherResults([c.exited for c in self.children])
        d.addCallback(self._merge)
        return d

    def stop(self) -> None:
        """Ask every child to end now (each closes its bots and reports)."""
        for t, child in zip(self.transports, self.children, strict=True):
            if child.status is None and not child.exited.called:
                try:
                    t.signalProcess("TERM")
                except Exception:  # already gone
                    pass

    def _each_second(self) -> None:
        if self.progress is None:
            return
        latest = [c.latest for c in self.children if c.latest is not None]
        iv = Interval()
        snap = {"elapsed": self.reactor.seconds() - self.started_at,
                "planned": self.settings.clients, "started": 0, "playing": 0, "live": 0,
                "silent": 0}
        for p in latest:
            iv.merge(Interval.from_dict(p["interval"]))
            for k in ("started", "playing", "live", "silent"):
                snap[k] += p.get(k, 0)
        for c in self.children:
            c.latest = None
        snap["interval"] = iv
        self.progress(snap)

    def _merge(self, _: Any) -> tuple[Stats, float]:
        if self._ticker.running:
            self._ticker.stop()
        stats = Stats()
        elapsed = 0.0
        for child in self.children:
            path = self.report_path(child.index)
            try:
                with open(path, encoding="utf-8") as f:
                    report = json.load(f)
            except (OSError, ValueError):
                # A worker that died without a report failed all its bots.
                share = len(range(child.index, self.settings.clients, self.count))
                stats.failures["worker_crashed"] += share
                self.write(f"worker {child.index} exited with {child.status} "
                           "and no report")
                continue
            stats.merge(Stats.from_dict(report["raw"]))
            elapsed = max(elapsed, float(report["elapsed_s"]))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return stats, elapsed
