"""
JSON from a stranger's bytes, with the work bounded before it starts.

:func:`json.loads` recurses once per level of nesting, so a short string of
brackets raises ``RecursionError`` (or exhausts the stack) rather than
``ValueError``; it also accepts ``NaN``, ``Infinity`` and lone surrogates,
which no sender of ours writes and which break readers later (an ``inf``
in a chart, a surrogate in a terminal).  :func:`loads` checks the size and
the nesting first, in one pass, and raises ``ValueError`` for all of these.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_OPEN = b"[{"
#: A string as JSON lexes it: from a quote to the next quote that is not
#: escaped (a backslash escapes any byte), or to the end of the input.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)
#: Every byte but brackets and braces, for bytes.translate to delete.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def depth(raw: bytes, limit: int) -> int:
    """
    How deep arrays and objects nest in ``raw`` (strings skipped as JSON
    lexes them), counted no further than ``limit + 1``.

    Wherever ``raw`` is valid JSON so far, this is the parser's nesting, so
    a parser given ``raw`` never goes deeper than the result before it
    either succeeds or finds the first error.
    """
    # Strings out, then everything but brackets (both in C): only the
    # brackets are looked at one by one.  Without a backslash, strings are
    # what lies between a quote and the next.
    if b"\\" in raw:
        outside = _STRING.sub(b"", raw)
    else:
        outside = b"".join(raw.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    level = deepest = 0
    for b in brackets:
        if b in _OPEN:
            level += 1
            if level > deepest:
                deepest = level
                if deepest > limit:
                    break
        else:
            level -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _plain(value: Any) -> bool:
    """No float that is not finite (``1e999``) and no string that is not UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return True


def loads(raw: bytes, max_bytes: int, max_depth: int) -> Any:
    """
    The JSON value in ``raw`` (UTF-8), or ``ValueError`` if it is longer
    than ``max_bytes``, nests deeper than ``max_depth``, is not JSON, or
    holds a number that is not finite or a string that is not UTF-8.
    """
    if len(raw) > max_bytes:
        raise ValueError(f"{len(raw)} bytes of JSON, more than {max_bytes}")
    if depth(raw, max_depth) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth}")
    # Numbers too large for a float (1e999) are seen as they are parsed; a
    # lone surrogate can only come from a \u escape.
    finite = [True]

    def parse_float(text: str) -> float:
        f = float(text)
        if not math.isfinite(f):
            finite[0] = False
        return f

    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                           parse_float=parse_float)
    except UnicodeDecodeError:
        raise ValueError("JSON that is not UTF-8") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ValueError("JSON nested too deep") from None
    except ValueError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not finite[0] or (b"\\u" in raw and not _plain(value)):
        raise ValueError("JSON with a number that is not finite or a lone surrogate")
    return value
