"""
Time named functions in place while a benchmark runs: the CPU time of
each call, summed, and the median of the second half of the calls (the
steady part, after start-up and logins).

On a shared machine a whole run moves by tens of percent from one minute
to the next; a function's own median, taken inside one run, moves much
less, and it counts the function where it runs: among the other nodes'
data, out of cache, as the benchmark's figures do.

    python -P benchmarks/timeparts.py mmo.server.handoff:Handoffs.tick,mmo.world.world:World.settle \\
        benchmarks/scaling.py --nodes 16 --players 500 --ticks 30 --placements pinned

Each target is ``module:Class.method`` or ``module:function``; a function
is replaced where it is looked up, so name the module that calls it (the
one that imported it by name).  The timing wrapper adds about a
microsecond a call, and nested targets count each other's.
"""

from __future__ import annotations

import importlib
import runpy
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any


def timed(f: Callable[..., Any], calls: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            calls.append(time.process_time() - started)
    return wrapper


def install(targets: list[str]) -> dict[str, list[float]]:
    """Wrap each ``module:Class.method`` or ``module:function``; their calls' times."""
    spent: dict[str, list[float]] = defaultdict(list)
    for target in targets:
        module_name, _, qualname = target.partition(":")
        owner: Any = importlib.import_module(module_name)
        *path, name = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, timed(getattr(owner, name), spent[qualname]))
    return spent


def report(spent: dict[str, list[float]]) -> str:
    lines = []
    for name, calls in spent.items():
        steady = sorted(calls[len(calls) // 2:])
        median = steady[len(steady) // 2] if steady else 0.0
        lines.append(f"{name}: {len(calls)} calls, {sum(calls) * 1000:.1f} ms in all, "
                     f"median of the second half {median * 1e6:.1f} us")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    spent = install(argv[0].split(","))
    sys.argv = argv[1:]
    try:
        runpy.run_path(argv[1], run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            raise
    finally:
        print(report(spent), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
