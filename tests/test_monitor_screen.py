"""
``mmo-monitor`` on a real X screen (Xvfb): the window opens where Qt's xcb
plugin has its libraries, and where it has not (or there is no display)
one line says what is missing and the text view runs instead of Qt
aborting the process.  Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import BIN, Process, cluster_args, wait_until

from mmo.gui import xcb

pytest.importorskip("PyQt5.QtWidgets")
pytest.importorskip("qt5reactor")
pytest.importorskip("pyqtgraph")

MONITOR = str(BIN / "mmo-monitor")
REPO = Path(__file__).resolve().parent.parent
#: What could steer Qt away from the xcb plugin this file is about.
QT_CHOICE = ("QT_QPA_PLATFORM", "QT_QPA_PLATFORM_PLUGIN_PATH", "QT_PLUGIN_PATH",
             "XDG_SESSION_TYPE", "WAYLAND_DISPLAY")
BARE_QAPPLICATION = "from PyQt5.QtWidgets import QApplication; QApplication([])"


def bundled_plugin() -> Path:
    from PyQt5.QtCore import QLibraryInfo

    return Path(QLibraryInfo.location(QLibraryInfo.PluginsPath)) / "platforms" / xcb.PLUGIN


def missing_on_this_machine() -> list[str]:
    """What ``ldd`` says the bundled plugin lacks (an oracle apart from the code tested)."""
    if shutil.which("ldd") is None:
        pytest.skip("no ldd to tell whether the xcb plugin's libraries are installed")
    out = subprocess.run(["ldd", str(bundled_plugin())], capture_output=True, text=True,
                         timeout=30).stdout
    return sorted({line.split("=>")[0].strip() for line in out.splitlines()
                   if "not found" in line})


def needs_the_libraries() -> None:
    missing = missing_on_this_machine()
    if missing:
        pytest.skip(f"the xcb plugin lacks {', '.join(missing)} here "
                    "(scripts/system-deps.sh installs them)")


@pytest.fixture
def xvfb(tmp_path: Path) -> Iterator[str]:
    """A virtual X screen of this test's own (a free display it picks); its name, ``:N``."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (scripts/system-deps.sh installs the xvfb package)")
    read, write = os.pipe()
    log = open(tmp_path / "xvfb.log", "wb")
    # -displayfd: Xvfb takes a free display number and writes it once it accepts clients.
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    os.close(write)
    try:
        number = b""
        deadline = time.monotonic() + 20
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise AssertionError("Xvfb did not start: "
                                     + (tmp_path / "xvfb.log").read_text(errors="replace"))
            if select.select([read], [], [], min(left, 1.0))[0]:
                chunk = os.read(read, 16)
                if not chunk:
                    raise AssertionError("Xvfb closed -displayfd without a display number")
                number += chunk
        yield f":{int(number)}"
    finally:
        os.close(read)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


def monitor(tmp_path: Path, name: str, env: dict[str, str], *args: str) -> Process:
    return Process([MONITOR, *cluster_args(), "--cluster-key-file", str(tmp_path / "none.key"),
                    *args], tmp_path, name, env=env, unset=QT_CHOICE)


def finished(proc: Process, timeout: float = 60) -> str:
    try:
        code = proc.wait(timeout)
    finally:
        proc.stop()
    assert code == 0, proc.output[-3000:]
    return proc.output


def said(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("mmo-monitor:")]


def test_missing_libraries_are_named_with_their_packages_and_the_text_view_runs(xvfb, tmp_path):
    # Unloadable files of the libraries' names, found first: for the dynamic
    # loader (and so for Qt) the real ones are out of reach, as if missing.
    decoys = tmp_path / "decoys"
    decoys.mkdir()
    for name in ("libxcb-icccm.so.4", "libxcb-keysyms.so.1"):
        (decoys / name).write_bytes(b"")
    env = {"DISPLAY": xvfb,
           "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [
               str(decoys), os.environ.get("LD_LIBRARY_PATH")]))}
    bare_env = {k: v for k, v in {**os.environ, **env}.items() if k not in QT_CHOICE}

    # The condition is real: a bare QApplication aborts of it.
    bare = subprocess.run([sys.executable, "-c", BARE_QAPPLICATION], env=bare_env,
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == -signal.SIGABRT, bare.stderr[-2000:]
    assert 'could not load the qt platform plugin "xcb"' in bare.stderr.lower()

    out = finished(monitor(tmp_path, "monitor", env, "--duration", "2"))
    lines = said(out)
    assert len(lines) == 1, out[-3000:]
    assert re.fullmatch(r"mmo-monitor: no window: Qt's xcb platform plugin cannot load "
                        r"libxcb-icccm\.so\.4.* \(Debian packages: libxcb-icccm4.*\); "
                        r"showing the text view", lines[0]), lines[0]
    # The text view ran, with the reason under its title.
    assert "mmo monitor  " in out and "(no node heard yet)" in out
    assert "\nno window: Qt's xcb platform plugin cannot load libxcb-icccm.so.4" in out
    assert "could not load the qt platform plugin" not in out.lower()

    # A screenshot needs the window: no text view then, an error.
    shot = monitor(tmp_path, "screenshot", env, "--screenshot", str(tmp_path / "s.png"))
    try:
        assert shot.wait(60) == 1, shot.output[-3000:]
    finally:
        shot.stop()
    assert [line[:40] for line in said(shot.output)] == [
        "mmo-monitor: no window for --screenshot:"]
    assert "libxcb-icccm4" in shot.output and not (tmp_path / "s.png").exists()


def test_without_a_display_the_text_view_runs(tmp_path):
    out = finished(monitor(tmp_path, "no-display", {"DISPLAY": ""}, "--duration", "1"))
    assert said(out) == ["mmo-monitor: no window: no X display (DISPLAY is not set); "
                         "showing the text view"]
    assert "(no node heard yet)" in out


def test_a_display_nobody_serves_means_the_text_view(tmp_path):
    needs_the_libraries()
    unused = next(n for n in range(700, 800) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())
    out = finished(monitor(tmp_path, "dead-display", {"DISPLAY": f":{unused}"},
                           "--duration", "1"))
    assert said(out) == [f"mmo-monitor: no window: cannot connect to the X display :{unused}; "
                         "showing the text view"]
    assert "(no node heard yet)" in out


def test_with_the_libraries_the_window_opens_on_the_x_screen(xvfb, tmp_path):
    needs_the_libraries()
    png = tmp_path / "window.png"
    mon = monitor(tmp_path, "monitor", {"DISPLAY": xvfb}, "--screenshot", str(png),
                  "--after", "4", "--width", "1000", "--height", "700")
    try:
        if shutil.which("xwininfo"):
            # The X server itself lists the window while it is open.
            def listed() -> bool:
                tree = subprocess.run(["xwininfo", "-root", "-tree", "-display", xvfb],
                                      capture_output=True, text=True, timeout=10).stdout
                return any("mmo monitor" in line and " 1000x700+" in line
                           for line in tree.splitlines())

            wait_until(listed, timeout=15, interval=0.2, what="the window on the X screen")
        assert mon.wait(60) == 0, mon.output[-3000:]
    finally:
        mon.stop()
    assert said(mon.output) == []
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1000, 700)
    meta = json.loads((tmp_path / "window.png.json").read_text())
    assert meta["platform"] == "xcb" and meta["size"] == [1000, 700]


# -- the check's parts, without a screen -------------------------------------------


def test_only_the_xcb_platform_is_examined():
    assert xcb.platform_name({}) == "xcb"
    assert xcb.platform_name({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    assert xcb.platform_name({"QT_QPA_PLATFORM": "xcb:nograb"}) == "xcb"
    assert xcb.platform_name({"XDG_SESSION_TYPE": "wayland"}) == "wayland"
    assert xcb.platform_name({"XDG_SESSION_TYPE": "wayland",
                              "XDG_CURRENT_DESKTOP": "GNOME"}) == "xcb"
    assert xcb.window_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert xcb.window_problem({}) == "no X display (DISPLAY is not set)"


def test_ldd_and_dlopen_errors_name_the_libraries():
    out = ("\tlibQt5XcbQpa.so.5 => /x/Qt5/lib/libQt5XcbQpa.so.5 (0x00007f)\n"
           "\tlibxcb-icccm.so.4 => not found\n\tlibxcb-keysyms.so.1 => not found\n"
           "\tlibxcb-icccm.so.4 => not found\n")
    assert xcb.parse_ldd(out) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    broken = ("/x/libqxcb.so: error while loading shared libraries: "
              "/tmp/d/libxcb-xinerama.so.0: file too short\n")
    assert xcb.parse_ldd(broken) == ["libxcb-xinerama.so.0"]
    assert xcb.library_in("libxcb-icccm.so.4: cannot open shared object file: "
                          "No such file or directory") == "libxcb-icccm.so.4"
    assert xcb.describe(["libxcb-icccm.so.4", "libfoo.so.2", "libxcb-xinerama.so.0"], "") == (
        "Qt's xcb platform plugin cannot load libxcb-icccm.so.4, libfoo.so.2, "
        "libxcb-xinerama.so.0 (Debian packages: libxcb-icccm4 libxcb-xinerama0)")
    assert xcb.describe([], "odd: error") == "Qt's xcb platform plugin does not load: odd: error"


def test_the_plugin_qt_would_load_is_the_one_examined(tmp_path):
    own, default = tmp_path / "own", tmp_path / "default" / "platforms"
    own.mkdir()
    default.mkdir(parents=True)
    (default / xcb.PLUGIN).write_bytes(b"")
    env = {"DISPLAY": ":0", "QT_QPA_PLATFORM_PLUGIN_PATH": str(own)}
    assert xcb.plugin_paths(env, str(tmp_path / "default")) == [default / xcb.PLUGIN]
    (own / xcb.PLUGIN).write_bytes(b"\x7fELF")
    assert xcb.plugin_paths(env, str(tmp_path / "default")) == [
        own / xcb.PLUGIN, default / xcb.PLUGIN]
    assert xcb.window_problem(env, str(tmp_path / "default")).startswith(
        "Qt's xcb platform plugin cannot load libqxcb.so")
    assert xcb.window_problem({"DISPLAY": ":0"}, str(tmp_path / "nowhere")) == (
        "Qt's xcb platform plugin (libqxcb.so) is not installed with PyQt5")


def test_every_library_the_plugin_needs_has_its_package_and_system_deps_installs_them():
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is needed to list the plugin's libraries")
    plugin = bundled_plugin()
    qt_lib = plugin.parent.parent.parent / "lib"
    needed = set()
    for path in (plugin, qt_lib / "libQt5XcbQpa.so.5"):
        out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        needed |= set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    from_system = {n for n in needed if not (qt_lib / n).exists()}
    assert from_system and from_system <= set(xcb.PACKAGES), from_system - set(xcb.PACKAGES)

    script = (REPO / "scripts" / "system-deps.sh").read_text()
    listed = re.search(r"^xcb=\(([^)]*)\)", script, re.M)
    assert listed, "system-deps.sh has no xcb=(...) list"
    # Python and PyQt5's QtCore need these before any window.
    base = {"libc6", "libstdc++6", "libgcc-s1", "zlib1g", "libglib2.0-0"}
    assert set(xcb.PACKAGES.values()) - base == set(listed.group(1).split())
    assert re.search(r"^command -v Xvfb .*want\+=\(xvfb\)", script, re.M)


def test_the_map_tints_each_region_with_its_owners_colour_on_the_x_screen(xvfb, tmp_path):
    """Two nodes heard (fake heartbeats over loopback multicast): the regions they own, drawn."""
    needs_the_libraries()
    from PyQt5.QtGui import QColor, QImage
    from test_monitor import Sender
    from test_monitor_regions import counts_of, expected

    from mmo.cluster.auth import load_or_create_key
    from mmo.monitor.present import REGION_ALPHA
    from mmo.settings import RegionSettings
    from mmo.world.regions import RegionPin

    key_file = tmp_path / "cluster.key"
    key = load_or_create_key(str(key_file))
    group = cluster_args()
    png = tmp_path / "regions.png"
    mon = monitor(tmp_path, "monitor", {"DISPLAY": xvfb}, *group,
                  "--cluster-key-file", str(key_file), "--screenshot", str(png),
                  "--after", "4", "--width", "1000", "--height", "700",
                  "--region-cells", "4", "--region-block", "1",
                  "--region-map", "world:0-4,0=beta")
    senders = [Sender("alpha", key=key), Sender("beta", key=key)]
    deadline = time.monotonic() + 60
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            # Heartbeats a few times a second until the monitor has taken its
            # screenshot and exited (at most a minute).
            while time.monotonic() < deadline:
                for sender in senders:
                    s.sendto(sender.heartbeat(), (group[1], int(group[3])))
                try:
                    code = mon.proc.wait(0.25)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                raise AssertionError("the monitor did not exit after its screenshot")
        assert code == 0, mon.output[-3000:]
    finally:
        mon.stop()
    meta = json.loads((tmp_path / "regions.png.json").read_text())
    assert meta["platform"] == "xcb"
    regions = RegionSettings(4, 1, pins=(RegionPin("world", "beta", (0, 4), (0, 0)),))
    owners = expected(["alpha", "beta"], regions)
    assert [o for _b, o in owners[:5]] == ["beta"] * 5
    assert meta["regions"]["total"] == 25
    assert meta["regions"]["by_node"] == counts_of(owners)
    assert {n["node"]: n["regions"] for n in meta["nodes"]} == {
        n: str(c) for n, c in counts_of(owners).items()}
    colours = meta["node_colours"]
    assert set(colours) == {"alpha", "beta"} and colours["alpha"] != colours["beta"]
    assert meta["regions"]["colours"] == colours

    # On the screen: many pixels of each owner's tint (its colour over the white map).
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1000, 700)

    def tint(name: str) -> tuple[int, int, int]:
        c, a = QColor(name), REGION_ALPHA / 255
        return tuple(round(v * a + 255 * (1 - a)) for v in (c.red(), c.green(), c.blue()))

    tints = {node: tint(c) for node, c in colours.items()}
    seen = dict.fromkeys(tints, 0)
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            p = QColor(image.pixel(x, y))
            rgb = (p.red(), p.green(), p.blue())
            for node, t in tints.items():
                if all(abs(u - v) <= 3 for u, v in zip(rgb, t, strict=True)):
                    seen[node] += 1
    assert all(n > 1000 for n in seen.values()), seen
