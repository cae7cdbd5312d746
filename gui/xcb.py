"""
Whether the window can open on an X screen, asked before the QApplication
exists.

When Qt's ``xcb`` platform plugin cannot load (a shared library it needs is
missing) or the X display cannot be reached, Qt prints "could not load the
Qt platform plugin xcb" and calls ``abort()``: the process dies with no
exception to catch.  So ``mmo-monitor`` asks first, and when the answer is
no, says why in one line (with the Debian packages to install) and shows
its text view instead.

How the libraries are checked, and why that way: the plugin is opened with
``dlopen`` (``ctypes.CDLL``), exactly what Qt does next, so it fails only
when Qt would (no false alarm from guessing at search paths, RPATHs or
``LD_LIBRARY_PATH``) and costs a few milliseconds: the libraries it loads
are the ones the window loads anyway.  ``dlopen`` names only the first
library it misses, so only when it fails ``ldd`` (part of glibc, which
PyQt5's manylinux wheels need anyway) lists every unresolved one, for a
message that names all the packages at once.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

#: The shared libraries PyQt5's xcb plugin (``libqxcb.so`` and
#: ``libQt5XcbQpa.so.5``) needs from the system, and the Debian packages
#: that have them (the plugin's Qt libraries come with PyQt5).
PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXext.so.6": "libxext6",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libz.so.1": "zlib1g",
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    "libc.so.6": "libc6",
    "libm.so.6": "libc6",
    "libdl.so.2": "libc6",
    "libpthread.so.0": "libc6",
}
PLUGIN = "libqxcb.so"


def platform_name(env: Mapping[str, str]) -> str:
    """
    The platform plugin a QApplication will load, chosen as Qt 5.15 does on
    Linux: ``QT_QPA_PLATFORM`` (without its ``:options``), else wayland in
    a Wayland session outside GNOME, else xcb.
    """
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":", 1)[0]
    desktops = (env.get("XDG_CURRENT_DESKTOP", "") + env.get("XDG_SESSION_DESKTOP", "")).lower()
    if env.get("XDG_SESSION_TYPE") == "wayland" and "gnome" not in desktops:
        return "wayland"
    return "xcb"


def plugin_paths(env: Mapping[str, str], default_dir: str | None = None) -> list[Path]:
    """
    Every ``libqxcb.so`` Qt would try, in its order: ``QT_QPA_PLATFORM_PLUGIN_PATH``,
    the ``platforms`` folder of each ``QT_PLUGIN_PATH`` entry, then Qt's own
    plugin folder (``default_dir``, else asked of PyQt5).
    """
    dirs = []
    if env.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
        dirs.append(Path(env["QT_QPA_PLATFORM_PLUGIN_PATH"]))
    dirs += [Path(p) / "platforms" for p in env.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    if default_dir is None:
        from PyQt5.QtCore import QLibraryInfo

        default_dir = QLibraryInfo.location(QLibraryInfo.PluginsPath)
    dirs.append(Path(default_dir) / "platforms")
    return [d / PLUGIN for d in dirs if (d / PLUGIN).is_file()]


def load_error(path: Path) -> str | None:
    """Why the dynamic loader cannot open ``path``, or ``None`` when it can."""
    try:
        ctypes.CDLL(str(path))
    except OSError as e:
        return " ".join(str(e).split())
    return None


def library_in(error: str) -> str | None:
    """The library a ``dlopen`` error names (``libX.so.1: cannot open shared object file``)."""
    head = error.split(": ", 1)[0].strip()
    return os.path.basename(head) if ".so" in head else None


def parse_ldd(output: str) -> list[str]:
    """The libraries ``ldd`` says are not found or cannot be loaded, in its order."""
    found: list[str] = []
    for line in output.splitlines():
        name = None
        if "=> not found" in line:
            name = line.split("=>", 1)[0].strip()
        elif "error while loading shared libraries: " in line:
            name = library_in(line.split("error while loading shared libraries: ", 1)[1])
        if name and name not in found:
            found.append(name)
    return found


def unloadable(path: Path, error: str) -> list[str]:
    """Every library ``path`` cannot load: ``ldd``'s list, else the one ``error`` names."""
    try:
        run = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=10)
        names = parse_ldd(run.stdout + run.stderr)
    except (OSError, subprocess.SubprocessError):
        names = []  # no ldd here: the library dlopen named is all we know
    first = library_in(error)
    if first and first not in names:
        names.insert(0, first)
    return names


def describe(names: list[str], error: str) -> str:
    """One line: what the plugin cannot load, and the packages that have it."""
    if not names:
        return f"Qt's xcb platform plugin does not load: {error}"
    packages = list(dict.fromkeys(PACKAGES[n] for n in names if n in PACKAGES))
    text = f"Qt's xcb platform plugin cannot load {', '.join(names)}"
    if packages:
        text += f" (Debian packages: {' '.join(packages)})"
    return text


def display_error(display: str) -> str | None:
    """Why the X display cannot be reached, or ``None`` when it can (asked of libxcb)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError as e:
        return f"cannot load libxcb.so.1: {e}"
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    # Never NULL: on failure xcb_connect returns a connection in an error state.
    conn = xcb.xcb_connect(display.encode(), None)
    failed = xcb.xcb_connection_has_error(conn)
    xcb.xcb_disconnect(conn)
    return f"cannot connect to the X display {display}" if failed else None


def window_problem(env: Mapping[str, str] | None = None,
                   default_dir: str | None = None) -> str | None:
    """
    ``None`` when a QApplication can start with ``env`` (default: this
    process's environment), else one line saying why it would abort.
    Only the xcb platform is examined; the others are Qt's to judge.
    """
    env = os.environ if env is None else env
    if platform_name(env) != "xcb":
        return None
    display = env.get("DISPLAY", "")
    if not display:
        return "no X display (DISPLAY is not set)"
    paths = plugin_paths(env, default_dir)
    if not paths:
        return f"Qt's xcb platform plugin ({PLUGIN}) is not installed with PyQt5"
    failures = []
    for path in paths:
        error = load_error(path)
        if error is None:
            return display_error(display)
        failures.append((path, error))
    path, error = failures[0]
    return describe(unloadable(path, error), error)
