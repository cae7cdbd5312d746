"""
The load generator's outputs: the progress line, the final summary and the
JSON report, all from a :class:`~mmo.loadgen.stats.Stats`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .. import __version__
from .refusals import refusals
from .settings import LoadgenSettings
from .stats import Interval, Stats

#: Top-level keys of the JSON report (a test checks every one is there).
REPORT_FIELDS = (
    "tool", "version", "started_at", "elapsed_s", "settings", "seed", "workers",
    "targets", "bots", "failures", "max_failures", "ok", "exit_code", "traffic",
    "actions", "corrections", "errors", "disconnects", "moves_between_nodes", "latency_ms",
    "per_bot", "stalls", "refusals", "raw",
)
LATENCIES = {"connect": "connect_time", "login": "login_time", "rtt": "rtt",
             "update_age": "update_age"}
PER_BOT = ("updates_per_sec", "bytes_in_per_sec", "entities_seen")


def _by(counter: dict[str, int]) -> dict[str, Any]:
    items = {k: v for k, v in sorted(counter.items()) if v}
    return {"total": sum(items.values()), "by_reason": items}


def build_report(stats: Stats, settings: LoadgenSettings, *, seed: int, started_at: float,
                 elapsed: float) -> dict[str, Any]:
    """The JSON report of a run: every measure with p50/p90/p99/max."""
    c = stats.counters
    span = max(elapsed, 1e-9)
    failures = _by(stats.failures)
    ok = failures["total"] <= settings.max_failures
    shown = {k: v for k, v in settings.as_dict().items() if k != "worker"}
    shown["targets"] = [f"{h}:{p}" for h, p in settings.targets]
    errors = _by(stats.errors)
    errors["by_code"] = errors.pop("by_reason")
    return {
        "tool": "mmo-loadgen",
        "version": __version__,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "elapsed_s": round(elapsed, 3),
        "settings": shown,
        "seed": seed,
        "workers": settings.workers,
        "targets": [f"{h}:{p}" for h, p in settings.addresses],
        "bots": {
            "planned": settings.clients,
            "started": c["bots_started"],
            "connected": c["connected"],
            "logged_in": c["logged_in"],
            "failed": failures["total"],
        },
        "failures": failures,
        "max_failures": settings.max_failures,
        "ok": ok,
        "exit_code": 0 if ok else 1,
        "traffic": {
            "frames_in": c["frames_in"], "frames_out": c["frames_out"],
            "bytes_in": c["bytes_in"], "bytes_out": c["bytes_out"],
            "frames_in_per_sec": round(c["frames_in"] / span, 1),
            "frames_out_per_sec": round(c["frames_out"] / span, 1),
            "bytes_in_per_sec": round(c["bytes_in"] / span, 1),
            "bytes_out_per_sec": round(c["bytes_out"] / span, 1),
        },
        "actions": {k: c[k] for k in ("moves_sent", "pings_sent", "pongs", "chats_sent",
                                      "chats_received", "ticks", "entity_updates")},
        "corrections": _by(stats.corrections),
        "errors": errors,
        "disconnects": _by(stats.disconnects),
        "moves_between_nodes": {
            # Redirects at login, handoffs in play (both followed with the
            # token), comebacks after a drop or a node's stop, and the time
            # from the end of the old connection to playing on the new one.
            "redirects": c["redirects"], "handoffs": c["handoffs"],
            "comebacks": c["comebacks"], "back": c["comebacks_back"],
            "failed": c["comebacks_failed"],
            "back_ms": stats.histograms["back_time"].summary(1000.0),
        },
        "latency_ms": {name: stats.histograms[key].summary(1000.0)
                       for name, key in LATENCIES.items()},
        "per_bot": {name: stats.histograms[name].summary(1.0, 2) for name in PER_BOT},
        "stalls": stalls(stats),
        "refusals": refusals(stats.failures, stats.refusal_texts, len(settings.addresses)),
        "raw": stats.to_dict(),
    }


def stalls(stats: Stats) -> dict[str, Any]:
    """
    How long bots went without an update: per bot that played a whole
    second, its longest gap and its share of silent seconds.
    """
    c = stats.counters
    played = c["played_seconds"]
    return {
        "longest_gap_ms": stats.histograms["longest_gap"].summary(1000.0),
        "silent_share": stats.histograms["silent_share"].summary(1.0, 4),
        "silent_bots": c["silent_bots"],
        "silent_seconds": c["silent_seconds"],
        "played_seconds": played,
        "silent_share_overall": round(c["silent_seconds"] / played, 4) if played else 0.0,
    }


def write_report(report: dict[str, Any], path: str) -> None:
    """Write ``report`` to ``path`` whole or not at all (rename into place)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def _rate(n: float) -> str:
    if n >= 10_000_000:
        return f"{n / 1_000_000:.0f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return f"{n:.0f}"


def progress_line(snap: dict[str, Any]) -> str:
    """One line about the last second: bots, traffic, RTT, update age, errors."""
    iv: Interval = snap["interval"]
    rtt, age = iv.rtt, iv.update_age
    connecting = snap["live"] - snap["playing"]
    return (
        f"[{snap['elapsed']:5.0f}s] bots {snap['playing']}/{snap['planned']} playing"
        f" ({connecting} logging in, {snap['started'] - snap['live']} gone)"
        f" | in {_rate(iv.frames_in)} msg/s {_rate(iv.bytes_in / 1000)} kB/s"
        f" | out {_rate(iv.frames_out)} msg/s"
        f" | rtt p50 {rtt.percentile(50) * 1000:.1f} p99 {rtt.percentile(99) * 1000:.1f} ms"
        f" | age p50 {age.percentile(50) * 1000:.1f} p99 {age.percentile(99) * 1000:.1f} ms"
        f" | silent 1s+ {snap.get('silent', 0)}"
        f" | errors {iv.errors} disconnects {iv.disconnects}"
    )


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The final summary: what a person reads at the end of a run."""
    b = report["bots"]
    t = report["traffic"]
    lines = [
        f"mmo-loadgen: {report['elapsed_s']:.1f}s, {b['planned']} bots over "
        f"{len(report['targets'])} target(s), {report['workers']} worker(s), "
        f"seed {report['seed']}",
        f"  bots: {b['started']} started, {b['connected']} connected, "
        f"{b['logged_in']} logged in, {b['failed']} failed "
        f"(allowed {report['max_failures']})",
        f"  traffic: in {t['frames_in_per_sec']:.0f} msg/s {t['bytes_in_per_sec'] / 1000:.0f} kB/s,"
        f" out {t['frames_out_per_sec']:.0f} msg/s {t['bytes_out_per_sec'] / 1000:.0f} kB/s",
        f"  {'measure':<22}{'count':>9}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}",
    ]
    st = report["stalls"]
    rows = [(f"{name} (ms)", s) for name, s in report["latency_ms"].items()]
    rows += [(name, s) for name, s in report["per_bot"].items()]
    rows += [("longest_gap (ms)", st["longest_gap_ms"]), ("silent_share", st["silent_share"])]
    for name, s in rows:
        lines.append(f"  {name:<22}{s['count']:>9}{s['p50']:>10}{s['p90']:>10}"
                     f"{s['p99']:>10}{s['max']:>10}")
    lines.append(f"  stalls: {st['silent_bots']} of {st['longest_gap_ms']['count']} bots had "
                 f"whole seconds without an update; {st['silent_seconds']} of "
                 f"{st['played_seconds']} bot-seconds silent "
                 f"({st['silent_share_overall'] * 100:.2f} %), mean per bot "
                 f"{st['silent_share']['mean'] * 100:.2f} %")
    a = report["actions"]
    lines.append(f"  moves {a['moves_sent']}, corrections {report['corrections']['total']}, "
                 f"pings {a['pings_sent']}/{a['pongs']} answered, chat {a['chats_sent']} "
                 f"said / {a['chats_received']} heard")
    for title, key, sub in (("errors", "errors", "by_code"),
                            ("disconnects", "disconnects", "by_reason"),
                            ("failures", "failures", "by_reason")):
        part = report[key]
        detail = ", ".join(f"{k} {v}" for k, v in part[sub].items()) or "none"
        lines.append(f"  {title}: {part['total']} ({detail})")
    for refusal in report["refusals"]:
        lines.append(f"  {refusal['line']}")
    lines.append("  result: " + ("OK" if report["ok"] else
                                 f"FAILED ({b['failed']} bots failed)"))
    return lines
