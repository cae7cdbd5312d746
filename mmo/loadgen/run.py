"""
A load-generator run as a Twisted service: one :class:`Fleet` in this
process, or a :class:`WorkerPool` of processes; progress every second, the
summary and the JSON report at the end, then the reactor stops.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from .fleet import Fleet
from .report import build_report, progress_line, summary_lines, write_report
from .settings import LoadgenSettings
from .stats import Stats


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class LoadGenService(Service):
    """
    Runs the load for ``--duration``, then stops the reactor by itself.

    ``exit_code`` is 0 when no more bots failed than ``--max-failures``
    allows.  Under ``twistd`` (``exit_at_end``), where the process would exit
    0 whatever happened, a non-zero code is given to the process at its very
    end, after twistd has cleaned up.
    """

    log = Logger()

    def __init__(self, settings: LoadgenSettings, reactor: Any,
                 write: Callable[[str], None] | None = None,
                 exit_at_end: bool = False, stop_reactor: bool = True) -> None:
        self.settings = settings
        self.reactor = reactor
        self.write = write or self._log_line
        self.exit_at_end = exit_at_end
        self.stop_reactor = stop_reactor
        self.exit_code = 1
        self.report: dict[str, Any] | None = None
        self.seed = settings.seed or random.SystemRandom().randrange(1, 2**31)
        self.worker = settings.worker
        self.runner: Fleet | Any = None
        self.finished: Deferred = Deferred()
        self._result: Deferred | None = None

    def _log_line(self, line: str) -> None:
        self.log.info("{line}", line=line)

    def startService(self) -> None:
        super().startService()
        s = self.settings
        started_at = self.reactor.seconds()
        if self.worker:
            index, count = (int(x) for x in self.worker.split("/"))
            self.runner = Fleet(s, self.reactor, first=index, step=count,
                                seed=self.seed, progress=self._json_progress)
            d = self.runner.start()
            d.addCallback(lambda stats: (stats, self.reactor.seconds() - started_at))
        elif s.workers > 1:
            from .workers import WorkerPool

            self.runner = WorkerPool(s, self.reactor, self.seed, self.write,
                                     self._progress if s.progress else None)
            d = self.runner.start()
        else:
            self.runner = Fleet(s, self.reactor, seed=self.seed,
                                progress=self._progress if s.progress else None)
            d = self.runner.start()
            d.addCallback(lambda stats: (stats, self.reactor.seconds() - started_at))
        if not self.worker:
            self.write(f"mmo-loadgen: {s.clients} bots for {s.duration:g}s against "
                       + ", ".join(f"{h}:{p}" for h, p in s.addresses)
                       + f" (seed {self.seed})")
        d.addCallback(self._done, started_at)
        d.addErrback(self._crashed)
        self._result = d

    def _progress(self, snap: dict[str, Any]) -> None:
        self.write(progress_line(snap))

    def _json_progress(self, snap: dict[str, Any]) -> None:
        snap = dict(snap, interval=snap["interval"].to_dict())
        sys.stdout.write(json.dumps({"progress": snap}) + "\n")
        sys.stdout.flush()

    def _done(self, result: tuple[Stats, float], started_at: float) -> None:
        stats, elapsed = result
        report = build_report(stats, self.settings, seed=self.seed,
                              started_at=started_at, elapsed=elapsed)
        self.report = report
        self.exit_code = report["exit_code"]
        path = self.settings.report
        if path:
            try:
                write_report(report, path)
            except OSError as e:
                self.write(f"mmo-loadgen: cannot write report {path}: {e.strerror}")
                self.exit_code = 1
        if not self.worker:
            for line in summary_lines(report):
                self.write(line)
            if path:
                self.write(f"  report: {path}")
        self._end()

    def _crashed(self, f: Failure) -> None:
        self.log.failure("the load generator failed", f)
        self.exit_code = 1
        self._end()

    def _end(self) -> None:
        if not self.finished.called:
            self.finished.callback(self.exit_code)
        if self.exit_at_end and self.exit_code:
            import atexit

            atexit.register(_exit_now, self.exit_code)
        if self.stop_reactor and self.reactor.running:
            self.reactor.stop()

    def stopService(self) -> Deferred:
        """Stopped early (a signal): close the bots, report, then let go."""
        super().stopService()
        if self.finished.called or self.runner is None:
            return succeed(None)
        self.stop_reactor = False
        self.runner.stop()
        return self.finished
