"""
Why bots failed, and what to change: one sentence per reason for the
summary, from the failures of a run and the node's own words.

A node that refuses a bot says why in an ``Error`` frame (the code and a
sentence such as "no more than 100 connections from one address"); most
refusals come from a limit that is an option of the node or of the load
generator.  :func:`explain` turns "400 bots failed with
``too_many_connections``" into the line a person needs, once per reason
however many bots it hit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What to change, by the reason a bot failed (an error code's name for a
#: refusal by the node, else the load generator's own name).  A callable
#: picks by the node's text where one code has several causes.
ADVICE: dict[str, Any] = {
    "too_many_connections": "raise the node's --max-per-ip (0: no limit) or spread "
                            "bots over --targets",
    "server_full": lambda text: (
        "the node cannot reach its account database: see the node's log"
        if "database" in text else
        "raise the node's --max-players, run fewer --clients or spread them over "
        "--targets"),
    "rate_limited": lambda text: (
        "earlier logins of these names failed (see auth_failed): use the accounts' "
        "--password or another --name-prefix, or raise the node's "
        "--login-failures-per-ip and --login-failures-per-name (0: no limit)"
        if "failed logins" in text else
        "lower --rate or --chat-rate, or raise the node's --move-rate or --chat-rate"),
    "login_timeout": "the node did not log the bots in within its --login-timeout: "
                     "lower --ramp, or raise the node's --login-timeout (password "
                     "hashing is most of a login: --password-iterations)",
    "auth_failed": "these names have accounts with another password: use their "
                   "--password or another --name-prefix",
    "registration_closed": "the node creates no accounts (--no-open-registration): "
                           "create them first or start it with --open-registration",
    "name_in_use": "these names are playing already (another load generator?): use "
                   "another --name-prefix",
    "version_mismatch": "run the load generator of the node's version",
    "slow_reader": "the bots did not read their updates in time, so the load "
                   "generator is the bottleneck: use more --workers or fewer --clients",
    "idle_timeout": "the bots sent nothing for the node's --idle-timeout: give them "
                    "a --rate above 0 or a shorter --ping-interval",
    "shutting_down": "start the run once the node is up (its /readyz answers ok)",
    "connect_refused": "nothing listens there, or its listen backlog overflowed: check "
                       "--host/--port or --targets, lower --ramp or raise the node's "
                       "--listen-backlog",
    "connect_timeout": "lower --ramp, or raise --connect-timeout or the node's "
                       "--listen-backlog",
    "websocket_refused": "the node opened no WebSocket there: with --transport ws, "
                         "--port and --targets name the node's --websocket ports",
    "login_unfinished": "lower --ramp, or raise --login-timeout or --duration",
}

#: Failures that are the load generator's own, not a refusal by the node.
CONNECT_FAILURES = ("connect_refused", "connect_timeout", "connect_failed",
                    "websocket_refused")


def advice(reason: str, text: str = "") -> str | None:
    """What to change for bots that failed with ``reason``, if anything."""
    found = ADVICE.get(reason)
    if callable(found):
        return str(found(text))
    return found


def explain(reason: str, bots: int, text: str = "", targets: int = 1) -> str | None:
    """
    One sentence about ``bots`` that failed with ``reason`` (``text``: the
    node's words), or ``None`` for a reason with nothing to change.
    """
    what = advice(reason, text)
    if what is None:
        return None
    count = f"{bots} bot{'s' if bots != 1 else ''}"
    if reason in CONNECT_FAILURES or reason == "login_unfinished":
        return f"{count} failed: {reason}: {what}"
    node = "the node" if targets == 1 else "the nodes"
    said = f" ({text})" if text else ""
    return f"{node} refused {count}: {reason.upper()}{said}: {what}"


def refusals(failures: Mapping[str, int], texts: Mapping[str, str],
             targets: int = 1) -> list[dict[str, Any]]:
    """Each failure reason that has advice: bots, the node's text, the line, most first."""
    out = []
    for reason, bots in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0])):
        text = texts.get(reason, "")
        line = explain(reason, bots, text, targets) if bots else None
        if line is not None:
            out.append({"reason": reason, "bots": bots, "text": text,
                        "advice": advice(reason, text), "line": line})
    return out
