"""
What every bot does with every read: scan the frames of an update.

:func:`scan` takes the frames of an update (``Moves``, ``Enter``, ``Leave``,
``Resync`` and one ``Tick``) from a read, straight from the buffer, and
stops before the first frame it leaves to the bot
(:meth:`~mmo.loadgen.bot.Bot._scan`): any other type, a second ``Tick``, a
frame cut by the end of the read, or a header the bot must refuse.

It is :func:`scan_py` below, or the same rules compiled
(``mmo/loadgen/_fastpath.c``, built by ``pip install .`` where a C compiler
is found; :data:`COMPILED` says which).  Scanning was the largest single
part of the generator's own instructions per bot and tick; see
``benchmarks/README.md`` for what the compiled scan saves.  Both give the
same results for the same bytes (``tests/test_loadgen_fastpath.py`` runs
both).
"""

from __future__ import annotations

from collections.abc import Callable

from ..wire import layout
from ..wire import messages as m

Buffer = bytes | bytearray | memoryview
#: ``(pos, frames, updates, visible, last_type, tick_time)``
Scanned = tuple[int, int, int, int, int, float | None]

_TICK_T = m.Tick.TYPE
_MOVES_T = m.Moves.TYPE
_ENTER_T = m.Enter.TYPE
_LEAVE_T = m.Leave.TYPE
_RESYNC_T = m.Resync.TYPE
_HEADER_SIZE = layout.HEADER.size
_LENGTH_SIZE = layout.LENGTH_SIZE
_read_header = layout.HEADER.unpack_from
_read_tick = layout.TICK.unpack_from
_read_count = layout.COUNT.unpack_from
#: The least length field of each type taken here: the type byte and what is read.
LEAST = {
    _TICK_T: 1 + layout.TICK.size,
    _MOVES_T: 1 + layout.COUNT.size,
    _ENTER_T: 1 + layout.COUNT.size,
    _LEAVE_T: 1 + layout.COUNT.size,
    _RESYNC_T: 1,
}


def scan_py(buf: Buffer, pos: int, end: int, max_frame: int, visible: int) -> Scanned:
    """
    Scan the whole update frames of ``buf[pos:end]``: return where it
    stopped, the frames and entity updates taken, what the bot sees after
    them, the last type taken (-1: none) and the server time of the Tick
    taken (None: none).
    """
    if not 0 <= pos <= end <= len(buf):
        raise ValueError("scan: pos and end must lie within the buffer")
    frames = updates = 0
    last = -1
    tick_time = None
    while end - pos >= _HEADER_SIZE:
        length, type_ = _read_header(buf, pos)
        least = LEAST.get(type_)
        if least is None or (type_ == _TICK_T and tick_time is not None):
            break
        if length < least or length > max_frame:
            break
        stop = pos + _LENGTH_SIZE + length
        if stop > end:
            break
        body = pos + _HEADER_SIZE
        if type_ == _MOVES_T:
            updates += _read_count(buf, body)[0]
        elif type_ == _TICK_T:
            tick_time = _read_tick(buf, body)[1]
        elif type_ == _ENTER_T:
            n = _read_count(buf, body)[0]
            visible += n
            updates += n
        elif type_ == _LEAVE_T:
            n = _read_count(buf, body)[0]
            visible = max(0, visible - n)
            updates += n
        else:
            visible = 0
        frames += 1
        last = type_
        pos = stop
    return pos, frames, updates, visible, last, tick_time


scan: Callable[[Buffer, int, int, int, int], Scanned]
try:
    from ._fastpath import scan  # type: ignore[no-redef]
    COMPILED = True
except ImportError:  # no C compiler where mmo was installed
    scan = scan_py
    COMPILED = False
